"""A card channel simulator in Stripe's API shape, on the shared simulator core.

It serves ``POST /v1/payment_intents`` (confirmed on creation), ``GET /v1/payment_intents/{id}``,
``GET /v1/payment_intents/search``, ``POST /v1/refunds``, ``GET /v1/refunds`` and Connect's
``POST /v1/transfers``, ``GET /v1/transfers`` and ``GET /v1/transfers/{id}`` (the platform's
balance paying connected accounts, see ``transfers``) with bearer secret-key auth and
form-encoded bodies, keeps Stripe's idempotency rules (the first answer to a key is saved once
execution starts, 500s included, and replayed; the same key with other parameters is an
``idempotency_error``), and sends signed webhook events on an exponential re-send schedule of
up to three days until an endpoint answers 2xx. Business dates are UTC.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from aiohttp import web

from channels.card.book import (
    GENERIC_DECLINE,
    CardBook,
    CardError,
    IntentDetails,
    scripted_failure,
)
from channels.card.objects import (
    error_json,
    intent_json,
    list_json,
    payment_error_json,
    refund_json,
    search_result_json,
)
from channels.card.params import (
    ApiAnswer,
    ApiCall,
    Params,
    Refusal,
    currency_code,
    invalid,
    nested,
    positive_amount,
    require_known,
    required,
    search_metadata,
)
from channels.card.settlement import settlement_text
from channels.card.transfers import DEFAULT_PAYOUT_BALANCE_MINOR, TransferDesk
from channels.card.webhooks import WebhookSender
from channels.simulator import (
    Behaviour,
    OrderStatus,
    RefundRefused,
    SimOrder,
    SimulatorSettings,
    control_routes,
    fee_for,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_SECRET_KEY = "sk_test_paystream"
DEFAULT_WEBHOOK_SECRET = "whsec_paystream"

_INTENT_PARAMS = frozenset(
    {"amount", "currency", "payment_method", "confirm", "metadata", "description"}
    | {"payment_method_types", "expand"}
)
_SEARCH_PARAMS = frozenset({"query", "limit", "page", "expand"})
_REFUND_PARAMS = frozenset({"payment_intent", "amount", "metadata", "reason", "expand"})
_REFUND_LIST_PARAMS = frozenset({"payment_intent", "limit", "expand"})
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _SavedAnswer:
    fingerprint: tuple[str, tuple[tuple[str, str], ...]]
    answer: ApiAnswer


Operation = Callable[[ApiCall], ApiAnswer]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CardSimulator:
    """The card channel's simulator: its settings, book, keys, webhook endpoint and web app."""

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        secret_key: str = DEFAULT_SECRET_KEY,
        webhook_secrets: Sequence[str] = (DEFAULT_WEBHOOK_SECRET,),
        webhook_url: str | None = None,
        fixed_fee_minor: int = 0,
        payout_balance_minor: int = DEFAULT_PAYOUT_BALANCE_MINOR,
        seed: int = 7,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings or SimulatorSettings()
        self.behaviour = Behaviour(self.settings, seed)
        self.book = CardBook()
        self.secret_key = secret_key
        self.webhooks = WebhookSender(self.behaviour, webhook_secrets, webhook_url)
        # Card fees are often a percentage plus a fixed amount per charge; this is the latter.
        self.fixed_fee_minor = fixed_fee_minor
        self._clock = clock
        self._saved: dict[str, _SavedAnswer] = {}
        self.transfers = TransferDesk(
            self.behaviour, clock, self.webhooks.publish, payout_balance_minor
        )
        self.app = self._build_app()

    @property
    def payout_balance_minor(self) -> int:
        """The platform's available balance, which transfers to connected accounts draw down."""
        return self.transfers.balance_minor

    @payout_balance_minor.setter
    def payout_balance_minor(self, amount_minor: int) -> None:
        self.transfers.balance_minor = amount_minor

    def bill(self, day: date) -> str:
        """The day's settlement report (UTC business day) as CSV text."""
        return settlement_text(self.book, day)

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/payment_intents", self._endpoint(self._create_intent)),
                # Registered before {id}, which would otherwise take "search" for an id.
                web.get("/v1/payment_intents/search", self._endpoint(self._search_intents)),
                web.get("/v1/payment_intents/{id}", self._endpoint(self._retrieve_intent)),
                web.post("/v1/refunds", self._endpoint(self._create_refund)),
                web.get("/v1/refunds", self._endpoint(self._list_refunds)),
                web.post("/v1/transfers", self._endpoint(self.transfers.create)),
                web.get("/v1/transfers", self._endpoint(self.transfers.list_transfers)),
                web.get("/v1/transfers/{id}", self._endpoint(self.transfers.retrieve)),
                *control_routes(self.settings, self.bill),
            ]
        )
        app.cleanup_ctx.append(self._webhooks_running)
        return app

    async def _webhooks_running(self, _: web.Application) -> AsyncIterator[None]:
        self.webhooks.start()
        yield
        await self.webhooks.close()

    # --- HTTP plumbing: auth, idempotency, outage, latency -----------------------------------

    def _endpoint(self, operation: Operation) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            answer = await self._answer(request, operation)
            await self.behaviour.answer_delay()
            headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
            return web.json_response(answer.body, status=answer.status, headers=headers)

        return handle

    async def _answer(self, request: web.Request, operation: Operation) -> ApiAnswer:
        if not self._authorised(request):
            message = "Invalid API Key provided: check the key in the Authorization header."
            return ApiAnswer(401, error_json("invalid_request_error", message), saved=False)
        source = await request.post() if request.method == "POST" else request.query
        params = {key: value for key, value in source.items() if isinstance(value, str)}
        call = ApiCall(params, request.match_info.get("id", ""))
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or key is None:
            return self._execute(operation, call)
        return self._idempotent(key, request.path, call, operation)

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.secret_key}".encode())

    def _idempotent(self, key: str, path: str, call: ApiCall, operation: Operation) -> ApiAnswer:
        if len(key) > MAX_IDEMPOTENCY_KEY:
            message = f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters long."
            return invalid(message).answer
        fingerprint = (path, tuple(sorted(call.params.items())))
        saved = self._saved.get(key)
        if saved is not None and saved.fingerprint != fingerprint:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}'."
            )
            return ApiAnswer(400, error_json("idempotency_error", message), saved=False)
        if saved is not None:
            return replace(saved.answer, replayed=True)
        answer = self._execute(operation, call)
        if answer.saved:
            # Kept for the simulator's lifetime; Stripe may prune keys after 24 hours.
            self._saved[key] = _SavedAnswer(fingerprint, answer)
        return answer

    def _execute(self, operation: Operation, call: ApiCall) -> ApiAnswer:
        if self.settings.outage:
            message = "An unknown error occurred on Stripe's end."
            return ApiAnswer(500, error_json("api_error", message))
        try:
            return operation(call)
        except Refusal as refusal:
            return refusal.answer

    # --- PaymentIntents ----------------------------------------------------------------------

    def _create_intent(self, call: ApiCall) -> ApiAnswer:
        params = call.params
        require_known(params, _INTENT_PARAMS)
        amount = positive_amount(params)
        if amount is None:
            raise invalid("Missing required param: amount.", "amount", "parameter_missing")
        currency = currency_code(params)
        payment_method = required(params, "payment_method")
        if params.get("confirm") != "true":
            raise invalid("This channel confirms on creation: send confirm=true.", "confirm")
        order, details = self._new_intent(params, amount, currency, payment_method)
        kept, is_new = self.book.add_intent(order, details)
        if is_new:
            self.webhooks.publish(
                _intent_event(kept), intent_json(self.book, kept), kept.created_at
            )
        return self._intent_answer(kept)

    def _new_intent(
        self, params: Params, amount: int, currency: str, payment_method: str
    ) -> tuple[SimOrder, IntentDetails]:
        metadata = nested(params, "metadata")
        error = self._card_outcome(payment_method)
        now = self._clock()
        intent_id = self.book.next_ref(now)
        order = SimOrder(
            order_id=metadata.get("order_id", intent_id),
            channel_ref=intent_id,
            amount_minor=amount,
            currency=currency,
            subject=params.get("description", metadata.get("subject", "")),
            status=OrderStatus.SUCCESS if error is None else OrderStatus.FAILED,
            created_at=now,
            fee_minor=0 if error is not None else self._fee(amount),
            notify_url=self.webhooks.url or "",
            failure_code=None if error is None else error.decline_code or error.code,
        )
        return order, IntentDetails(payment_method, metadata, error)

    def _fee(self, amount: int) -> int:
        return fee_for(amount, self.settings.fee_bps) + self.fixed_fee_minor

    def _card_outcome(self, payment_method: str) -> CardError | None:
        if not payment_method.startswith("pm_card_"):
            message = f"No such PaymentMethod: '{payment_method}'"
            raise invalid(message, "payment_method", "resource_missing")
        scripted = scripted_failure(payment_method)
        if scripted is not None or self.behaviour.succeeds():
            return scripted
        return GENERIC_DECLINE

    def _intent_answer(self, order: SimOrder) -> ApiAnswer:
        intent = intent_json(self.book, order)
        error = self.book.details(order).error
        if error is None:
            return ApiAnswer(200, intent)
        # A confirm that fails answers 402 with the PaymentIntent inside the error.
        body = {"error": {**payment_error_json(error, order.channel_ref), "payment_intent": intent}}
        return ApiAnswer(402, body)

    def _retrieve_intent(self, call: ApiCall) -> ApiAnswer:
        return ApiAnswer(200, intent_json(self.book, self._intent_for(call.target, "intent")))

    def _search_intents(self, call: ApiCall) -> ApiAnswer:
        require_known(call.params, _SEARCH_PARAMS)
        wanted = search_metadata(required(call.params, "query"))
        found = [intent_json(self.book, order) for order in self.book.search_metadata(wanted)]
        return ApiAnswer(200, search_result_json("/v1/payment_intents/search", found[::-1]))

    def _intent_for(self, intent_id: str, param: str) -> SimOrder:
        order = self.book.intent(intent_id)
        if order is None:
            message = f"No such payment_intent: '{intent_id}'"
            error = error_json("invalid_request_error", message, "resource_missing", param)
            raise Refusal(ApiAnswer(404, error, saved=False))
        return order

    # --- Refunds -----------------------------------------------------------------------------

    def _create_refund(self, call: ApiCall) -> ApiAnswer:
        params = call.params
        require_known(params, _REFUND_PARAMS)
        order = self._intent_for(required(params, "payment_intent"), "payment_intent")
        amount = positive_amount(params) or order.amount_minor - order.refunded_minor
        reason = params.get("reason", "")
        if reason and reason not in _REFUND_REASONS:
            raise invalid(f"Invalid reason: {reason}", "reason", "parameter_invalid_string")
        metadata = nested(params, "metadata")
        refund_id = metadata.get("refund_id", f"refund-{uuid.uuid4().hex}")
        made_before = len(order.refunds)
        try:
            refund = self.book.refund(order.order_id, refund_id, amount, self._clock(), reason)
        except RefundRefused as refused:
            raise _refund_refusal(refused, order) from None
        self.book.keep_refund_metadata(refund, metadata)
        body = refund_json(self.book, order, refund)
        if len(order.refunds) > made_before:
            self.webhooks.publish("refund.created", body, refund.created_at)
        return ApiAnswer(200, body)

    def _list_refunds(self, call: ApiCall) -> ApiAnswer:
        require_known(call.params, _REFUND_LIST_PARAMS)
        order = self._intent_for(required(call.params, "payment_intent"), "payment_intent")
        refunds = [refund_json(self.book, order, refund) for refund in reversed(order.refunds)]
        return ApiAnswer(200, list_json("/v1/refunds", refunds))


def _intent_event(order: SimOrder) -> str:
    if order.status is OrderStatus.SUCCESS:
        return "payment_intent.succeeded"
    return "payment_intent.payment_failed"


def _refund_refusal(refused: RefundRefused, order: SimOrder) -> Refusal:
    left = order.amount_minor - order.refunded_minor
    if refused.code == "ORDER_NOT_PAID":
        message = f"This PaymentIntent ({order.channel_ref}) does not have a successful charge."
        return invalid(message, "payment_intent", "payment_intent_unexpected_state")
    if left == 0:
        message = f"Charge for {order.channel_ref} has already been refunded."
        return _executed_refusal(message, "charge_already_refunded")
    message = f"Refund amount is greater than unrefunded amount on charge ({left})."
    return _executed_refusal(message, "amount_too_large")


def _executed_refusal(message: str, code: str) -> Refusal:
    return Refusal(ApiAnswer(400, error_json("invalid_request_error", message, code, "amount")))
