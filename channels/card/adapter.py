"""The card channel's adapter: our orders as Stripe PaymentIntents, Refunds and Transfers.

A charge is ``POST /v1/payment_intents`` confirmed on creation, with our order id as its
``Idempotency-Key`` and in ``metadata[order_id]``, so a repeat replays the first answer instead
of charging twice, and the charge can be found again by our id alone. A refund is
``POST /v1/refunds`` against the PaymentIntent found that way, keyed by our refund id. A payout
is a Connect transfer, ``POST /v1/transfers`` from the platform's balance to the payee's
connected account, keyed by our payout id and carrying it as its ``transfer_group``, which
``GET /v1/transfers`` filters by exactly: that list is the payout's status query.

Stripe keeps idempotency keys for 24 hours, and some stand-ins for Stripe ignore them; with
``look_before_create`` the adapter first looks for the PaymentIntent (Refund, Transfer)
carrying our id and creates one only when there is none. Search results lag writes by up to a
minute on Stripe, so the key still guards repeats that follow each other closely.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from channels.base import (
    AttemptOutcome,
    ChannelNotice,
    ChannelReply,
    ChargeOrder,
    NoticeAnswer,
    NoticeRefused,
    PayoutOrder,
    RefundOrder,
)
from channels.card.replies import (
    API_VERSION,
    CARD_ERROR_CODES,
    DISCONNECTED,
    NOT_FOUND,
    TIMEOUT,
    UNREACHABLE,
    error_reply,
    intent_reply,
    notice_from_event,
    payout_error_reply,
    payout_reply,
    pick_intent,
    refund_reply,
    transfers_reply,
    unreadable,
)
from channels.card.signing import SIGNATURE_HEADER, SignatureRefused, verify_signature

INTENTS_PATH = "/v1/payment_intents"
SEARCH_PATH = "/v1/payment_intents/search"
REFUNDS_PATH = "/v1/refunds"
TRANSFERS_PATH = "/v1/transfers"
_PAGE_SIZE = 100
_LIST_PAGES = 10  # how far back the list fallback looks: the 1000 latest PaymentIntents
_METADATA_LIMIT = 500  # Stripe's longest metadata value


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any


class _NoAnswer(Exception):
    """A call that produced no answer to read; ``reply`` says what that means."""

    def __init__(self, reply: ChannelReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


class CardAdapter:
    """The card channel, spoken in Stripe's API over one HTTP session."""

    name = "card"
    error_codes = CARD_ERROR_CODES

    def __init__(
        self,
        base_url: str,
        secret_key: str,
        webhook_secret: str,
        timeout_seconds: float = 10.0,
        *,
        payment_method: str = "pm_card_visa",
        old_webhook_secrets: Sequence[str] = (),
        look_before_create: bool = False,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret_key = secret_key
        # Secrets being rolled out stay valid until Stripe stops signing with them.
        self._webhook_secrets = (webhook_secret, *old_webhook_secrets)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        # ChargeOrder carries no card: the card this adapter charges is set here.
        self._payment_method = payment_method
        self._look_before_create = look_before_create
        self._http: aiohttp.ClientSession | None = None

    async def charge(self, order: ChargeOrder) -> ChannelReply:
        """Create and confirm a PaymentIntent for the order; a repeat never charges twice."""
        if self._look_before_create:
            earlier = await self.query(order.order_id)
            if not (earlier.outcome is AttemptOutcome.FAILED and earlier.code == NOT_FOUND):
                return earlier
        try:
            form = self._charge_form(order)
            answer = await self._call("POST", INTENTS_PATH, form=form, key=order.order_id)
        except _NoAnswer as failed:
            return failed.reply
        return _created(answer, intent_reply)

    async def query(self, order_id: str) -> ChannelReply:
        """What became of the order's charge; nothing found means nothing was captured."""
        try:
            intents = await self._intents_for(order_id)
        except _NoAnswer as failed:
            # A lookup that failed proves nothing either way.
            return replace(failed.reply, outcome=AttemptOutcome.UNKNOWN)
        chosen = pick_intent(intents)
        if chosen is None:
            message = "no PaymentIntent carries this order id: nothing was captured"
            return ChannelReply(AttemptOutcome.FAILED, code=NOT_FOUND, message=message)
        return _warn_if_captured_twice(intent_reply(chosen), intents)

    async def refund(self, order: RefundOrder) -> ChannelReply:
        """Refund part or all of the order's PaymentIntent, once per refund id."""
        try:
            return await self._refund(order)
        except _NoAnswer as failed:
            return failed.reply

    async def payout(self, order: PayoutOrder) -> ChannelReply:
        """Transfer to the payee's connected account; a repeat of the payout id pays once."""
        if self._look_before_create:
            earlier = await self.query_payout(order.payout_id)
            if not (earlier.outcome is AttemptOutcome.FAILED and earlier.code == NOT_FOUND):
                return earlier
        try:
            form = _payout_form(order)
            answer = await self._call("POST", TRANSFERS_PATH, form=form, key=order.payout_id)
        except _NoAnswer as failed:
            return failed.reply
        if answer.status == 200:
            return payout_reply(answer.body, order)
        return payout_error_reply(answer.status, answer.body)

    async def query_payout(self, payout_id: str) -> ChannelReply:
        """What became of a payout: the Transfers whose ``transfer_group`` is its id."""
        query = {"transfer_group": payout_id, "limit": str(_PAGE_SIZE)}
        try:
            transfers = self._page(await self._call("GET", TRANSFERS_PATH, query=query))
        except _NoAnswer as failed:
            # A lookup that failed proves nothing either way.
            return replace(failed.reply, outcome=AttemptOutcome.UNKNOWN)
        return transfers_reply(transfers)

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> ChannelNotice:
        """Verify ``Stripe-Signature`` and decode the event; raises NoticeRefused."""
        try:
            verify_signature(body, _header(headers, SIGNATURE_HEADER), self._webhook_secrets)
        except SignatureRefused as refused:
            raise NoticeRefused(refused.problem.value) from None
        try:
            event = json.loads(body)
        except ValueError:
            raise NoticeRefused("unreadable_event") from None
        return notice_from_event(event, self.name)

    def acknowledge(self) -> NoticeAnswer:
        """Any 2xx stops Stripe re-sending; this is the body Stripe's own examples send."""
        return NoticeAnswer(200, b'{"received": true}', {"Content-Type": "application/json"})

    def refuse(self, reason: str) -> NoticeAnswer:
        """A 400, which Stripe re-sends on its schedule."""
        body = json.dumps({"error": reason}).encode()
        return NoticeAnswer(400, body, {"Content-Type": "application/json"})

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _refund(self, order: RefundOrder) -> ChannelReply:
        intent = pick_intent(await self._intents_for(order.order_id))
        if intent is None:
            message = "no PaymentIntent carries this order id: nothing to refund"
            return ChannelReply(AttemptOutcome.FAILED, code=NOT_FOUND, message=message)
        intent_id = str(intent.get("id"))
        if self._look_before_create:
            earlier = await self._refund_made(intent_id, order.refund_id)
            if earlier is not None:
                return refund_reply(earlier)
        form = _refund_form(order, intent_id)
        answer = await self._call("POST", REFUNDS_PATH, form=form, key=order.refund_id)
        return _created(answer, refund_reply)

    # --- Finding what is there ---------------------------------------------------------------

    async def _intents_for(self, order_id: str) -> list[Any]:
        query = {"query": f"metadata['order_id']:{_search_quoted(order_id)}"}
        answer = await self._call("GET", SEARCH_PATH, query=query)
        if answer.status == 404:
            # A stand-in without the search API: page through the latest PaymentIntents.
            return await self._listed_intents(order_id)
        return self._page(answer)

    async def _listed_intents(self, order_id: str) -> list[Any]:
        found: list[Any] = []
        query = {"limit": str(_PAGE_SIZE)}
        for _ in range(_LIST_PAGES):
            answer = await self._call("GET", INTENTS_PATH, query=query)
            page = self._page(answer)
            found += [intent for intent in page if _metadata(intent).get("order_id") == order_id]
            if not page or not answer.body.get("has_more"):
                break
            query["starting_after"] = str(page[-1].get("id"))
        return found

    async def _refund_made(self, intent_id: str, refund_id: str) -> dict[str, Any] | None:
        query = {"payment_intent": intent_id, "limit": str(_PAGE_SIZE)}
        refunds = self._page(await self._call("GET", REFUNDS_PATH, query=query))
        made = [refund for refund in refunds if _metadata(refund).get("refund_id") == refund_id]
        return made[0] if made else None

    @staticmethod
    def _page(answer: _Answer) -> list[Any]:
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        if answer.status != 200:
            raise _NoAnswer(error_reply(answer.status, answer.body, AttemptOutcome.UNKNOWN))
        if not isinstance(data, list):
            raise _NoAnswer(unreadable("the answer is not a list of objects"))
        return [item for item in data if isinstance(item, dict)]

    # --- HTTP --------------------------------------------------------------------------------

    def _charge_form(self, order: ChargeOrder) -> list[tuple[str, str]]:
        # Card only, so a confirm on the server never needs a return_url for redirects.
        return [
            ("amount", str(order.amount_minor)),
            ("currency", order.currency.lower()),
            ("payment_method", self._payment_method),
            ("payment_method_types[0]", "card"),
            ("confirm", "true"),
            ("metadata[order_id]", order.order_id),
            ("metadata[merchant_id]", order.merchant_id),
            ("metadata[subject]", order.subject[:_METADATA_LIMIT]),
        ]

    async def _call(
        self,
        method: str,
        path: str,
        *,
        form: list[tuple[str, str]] | None = None,
        query: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> _Answer:
        headers = {"Authorization": f"Bearer {self._secret_key}", "Stripe-Version": API_VERSION}
        if key is not None:
            headers["Idempotency-Key"] = key
        url = self._base_url + path
        try:
            async with self._session().request(
                method, url, data=form, params=query, headers=headers
            ) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:
            reply = _no_answer(TIMEOUT, f"no answer within {self._timeout.total} s")
            raise _NoAnswer(reply) from None
        except aiohttp.ClientConnectorError as error:
            reply = ChannelReply(AttemptOutcome.FAILED, code=UNREACHABLE, message=str(error))
            raise _NoAnswer(reply) from error
        except aiohttp.ClientError as error:
            raise _NoAnswer(_no_answer(DISCONNECTED, str(error))) from error
        return _Answer(status, _parsed(raw, status))

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http


def _refund_form(order: RefundOrder, intent_id: str) -> list[tuple[str, str]]:
    # Our order id rides along so the refund's webhook names the order it belongs to.
    return [
        ("payment_intent", intent_id),
        ("amount", str(order.amount_minor)),
        ("metadata[refund_id]", order.refund_id),
        ("metadata[order_id]", order.order_id),
        ("metadata[reason]", order.reason[:_METADATA_LIMIT]),
    ]


def _payout_form(order: PayoutOrder) -> list[tuple[str, str]]:
    # Stripe checks who the payee is when the account is onboarded, not per transfer, so the
    # name only rides along for the people reading the transfer.
    form = [
        ("amount", str(order.amount_minor)),
        ("currency", order.currency.lower()),
        ("destination", order.payee_account),
        ("transfer_group", order.payout_id),
        ("metadata[payout_id]", order.payout_id),
        ("metadata[payee_name]", order.payee_name[:_METADATA_LIMIT]),
    ]
    # Stripe reads an empty value as "unset", which a create does not take.
    return [*form, ("description", order.remark)] if order.remark else form


def _created(answer: _Answer, read: Callable[[Any], ChannelReply]) -> ChannelReply:
    if answer.status == 200:
        return read(answer.body)
    return error_reply(answer.status, answer.body, AttemptOutcome.FAILED)


def _header(headers: Mapping[str, str], wanted: str) -> str | None:
    # Frameworks hand headers over in any case; HTTP says the name is case-insensitive.
    return next((value for name, value in headers.items() if name.lower() == wanted.lower()), None)


def _parsed(raw: bytes, status: int) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise _NoAnswer(unreadable(f"HTTP {status} with a body that is not JSON")) from None


def _no_answer(code: str, message: str) -> ChannelReply:
    return ChannelReply(AttemptOutcome.UNKNOWN, code=code, message=message)


def _metadata(stripe_object: dict[str, Any]) -> dict[str, Any]:
    metadata = stripe_object.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _search_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _warn_if_captured_twice(reply: ChannelReply, intents: list[Any]) -> ChannelReply:
    captured = [intent for intent in intents if intent.get("status") == "succeeded"]
    if len(captured) < 2:
        return reply
    ids = ", ".join(str(intent.get("id")) for intent in captured)
    return replace(reply, message=f"{len(captured)} PaymentIntents captured this order: {ids}")
