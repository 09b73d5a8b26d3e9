"""The WeChat Pay v3 adapter: our orders in the channel's protocol, its answers as replies.

An app payment completes when the user pays in WeChat, so a created order is PENDING and the
result comes by callback or by query. A payout is a merchant transfer batch of one detail: the
channel takes the batch (PENDING) and pays the detail shortly after, which the query settles.
Every request is signed with the merchant key; every answer must carry a valid platform
signature, or it is not trusted (UNKNOWN "UNREADABLE").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from yarl import URL

from channels.base import (
    AttemptOutcome,
    ChannelNotice,
    ChannelReply,
    ChargeOrder,
    ErrorClass,
    ErrorCodeMap,
    NoticeAnswer,
    PayoutOrder,
    RefundOrder,
)
from channels.wechat.notices import payment_outcome, read_notice, refund_outcome
from channels.wechat.payouts import (
    NO_SUCH_TRANSFER,
    PAYOUT_ERROR_CODES,
    batch_ended,
    batch_taken,
    detail_path,
    detail_reply,
    transfer_batch,
)
from channels.wechat.signing import (
    MerchantSigner,
    PlatformVerifier,
    SignatureRejected,
    apiv3_key_bytes,
)
from channels.wechat.wire import (
    CREATE_PATH,
    CURRENCY,
    QUERY_PATH,
    REFUND_PATH,
    TRANSFER_BATCH_PATH,
    RefundStatus,
)
from channels.wechat.wire import TradeState as State

_RETRYABLE, _FINAL, _UNKNOWN = ErrorClass.RETRYABLE, ErrorClass.FINAL, ErrorClass.UNKNOWN

WECHAT_ERROR_CODES = ErrorCodeMap(
    {
        # Refused before anything moved, for reasons of this channel or this merchant's
        # contract with it: another channel may take the payment.
        "SIGN_ERROR": _RETRYABLE,
        "PARAM_ERROR": _RETRYABLE,
        "INVALID_REQUEST": _RETRYABLE,
        "MCH_NOT_EXISTS": _RETRYABLE,
        "APPID_MCHID_NOT_MATCH": _RETRYABLE,
        "NO_AUTH": _RETRYABLE,
        "RULE_LIMIT": _RETRYABLE,
        "FREQUENCY_LIMITED": _RETRYABLE,
        "ORDER_NOT_EXIST": _RETRYABLE,  # a query: the channel never took the order
        "UNREACHABLE": _RETRYABLE,  # ours: the connection failed, nothing was sent
        # The merchant's balance cannot fund a refund or a payout: nothing moved, and only
        # a top-up (then asking again) helps, so no channel should try in its place.
        "NOT_ENOUGH": _FINAL,
        # The user's payment failed or the order is over: no channel should try again.
        "NOTENOUGH": _FINAL,
        "ACCOUNTERROR": _FINAL,
        "USER_ACCOUNT_ABNORMAL": _FINAL,
        "TRADE_ERROR": _FINAL,
        "ORDER_CLOSED": _FINAL,
        "RESOURCE_NOT_EXISTS": _FINAL,
        State.PAYERROR.value: _FINAL,
        State.CLOSED.value: _FINAL,
        State.REVOKED.value: _FINAL,
        RefundStatus.CLOSED.value: _FINAL,
        RefundStatus.ABNORMAL.value: _FINAL,
        # The channel's own advice is to repeat the same request: the order may or may not
        # exist, so only a query can tell.
        "SYSTEM_ERROR": _UNKNOWN,
        "BANKERROR": _UNKNOWN,
        # The number was used for a different order, which may have been paid.
        "OUT_TRADE_NO_USED": _UNKNOWN,
        "TIMEOUT": _UNKNOWN,
        "UNREADABLE": _UNKNOWN,
    }
    | dict(PAYOUT_ERROR_CODES),
    absent=frozenset({"ORDER_NOT_EXIST", NO_SUCH_TRANSFER}),
)

_APP_PATH = CREATE_PATH.format(trade_type="app")


@dataclass(frozen=True)
class _Answer:
    """A verified answer: its HTTP status and JSON body."""

    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str | None:
        code = self.body.get("code")
        return code if isinstance(code, str) else None


class _NoTrustedAnswer(Exception):
    """The call ended without an answer we can trust; ``reply`` says how."""

    def __init__(self, reply: ChannelReply) -> None:
        super().__init__(reply.code)
        self.reply = reply


class WechatAdapter:
    """WeChat Pay v3 app payments for one merchant, over one HTTP session."""

    name = "wechat"
    error_codes = WECHAT_ERROR_CODES

    def __init__(
        self,
        *,
        base_url: str,
        mchid: str,
        appid: str,
        merchant_key: RSAPrivateKey,
        merchant_serial: str,
        platform_key: RSAPublicKey,
        platform_serial: str,
        apiv3_key: str | bytes,
        timeout: float = 10.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._mchid = mchid
        self._appid = appid
        self._signer = MerchantSigner(mchid, merchant_serial, merchant_key)
        self._verifier = PlatformVerifier(platform_serial, platform_key)
        self._apiv3_key = apiv3_key_bytes(apiv3_key)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def charge(self, order: ChargeOrder) -> ChannelReply:
        """Create an app payment; PENDING until the user pays (the prepay id is the message)."""
        if order.currency != CURRENCY:
            return ChannelReply(AttemptOutcome.FAILED, code="PARAM_ERROR", message="CNY only")
        try:
            answer = await self._call("POST", _APP_PATH, self._create_payload(order))
        except _NoTrustedAnswer as untrusted:
            return untrusted.reply
        if answer.status == 200 and isinstance(answer.body.get("prepay_id"), str):
            return ChannelReply(AttemptOutcome.PENDING, message=answer.body["prepay_id"])
        if answer.code == "ORDERPAID":
            # Asked again after the user paid: the query tells what was paid, and its id.
            return await self.query(order.order_id)
        return self._failure(answer)

    async def query(self, order_id: str) -> ChannelReply:
        """What became of a payment, by our order id (the channel's out_trade_no)."""
        path = QUERY_PATH.format(out_trade_no=quote(order_id, safe=""))
        try:
            answer = await self._call("GET", f"{path}?mchid={quote(self._mchid, safe='')}")
        except _NoTrustedAnswer as untrusted:
            return untrusted.reply
        if answer.status != 200:
            return self._failure(answer)
        return _transaction_reply(answer.body)

    async def refund(self, order: RefundOrder) -> ChannelReply:
        """Refund all or part of a paid order, idempotent on our refund id."""
        try:
            answer = await self._call("POST", REFUND_PATH, _refund(order))
        except _NoTrustedAnswer as untrusted:
            return untrusted.reply
        if answer.status != 200:
            return self._failure(answer)
        return _refund_reply(answer.body)

    async def payout(self, order: PayoutOrder) -> ChannelReply:
        """Transfer to a payee's WeChat balance (``payee_account`` is the openid, the name is
        checked by the channel); PENDING once the batch is taken, the batch id as message."""
        if order.currency != CURRENCY:
            return ChannelReply(AttemptOutcome.FAILED, code="PARAM_ERROR", message="CNY only")
        payload = transfer_batch(order, self._appid, self._verifier.public_key)
        try:
            answer = await self._call("POST", TRANSFER_BATCH_PATH, payload)
        except _NoTrustedAnswer as untrusted:
            return untrusted.reply
        if answer.status != 200:
            return self._failure(answer)
        try:
            status, batch_id = batch_taken(answer.body)
        except ValueError:
            return _unknown("UNREADABLE", "batch lacks its status or id")
        if batch_ended(status):
            # Asked again after the transfer ended: its detail tells how.
            return await self.query_payout(order.payout_id)
        return ChannelReply(AttemptOutcome.PENDING, message=batch_id)

    async def query_payout(self, payout_id: str) -> ChannelReply:
        """What became of a payout, by the detail of its batch (FAILED NOT_FOUND when the
        channel never took it)."""
        try:
            answer = await self._call("GET", detail_path(payout_id))
        except _NoTrustedAnswer as untrusted:
            return untrusted.reply
        if answer.status != 200:
            return self._failure(answer)
        return detail_reply(answer.body)

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> ChannelNotice:
        """Verify a callback's signature, decrypt its resource and read it (NoticeRefused). The
        notice names this adapter's channel (two channels may share the kind)."""
        notice = read_notice(self._verifier, self._apiv3_key, headers, body)
        return replace(notice, channel=self.name)

    def acknowledge(self) -> NoticeAnswer:
        """204 with no body: the channel stops re-sending."""
        return NoticeAnswer(status=204)

    def refuse(self, reason: str) -> NoticeAnswer:
        """500 with the channel's failure body: the channel re-sends on its schedule."""
        body = json.dumps({"code": "FAIL", "message": reason}, ensure_ascii=False).encode()
        return NoticeAnswer(500, body, {"Content-Type": "application/json; charset=utf-8"})

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, url: str, payload: dict[str, Any] | None = None) -> _Answer:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {
            "Authorization": self._signer.authorize(method, url, body).header(),
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Wechatpay-Serial": self._verifier.serial_no,
        }
        # The signature covers the URL as written, so it must be sent exactly so.
        target = URL(self._base_url + url, encoded=True)
        try:
            async with self._http().request(
                method, target, data=body or None, headers=headers
            ) as response:
                return self._trusted(response.status, response.headers, await response.read())
        except aiohttp.ClientConnectorError as error:
            raise _NoTrustedAnswer(_unreachable(error)) from error
        except TimeoutError as error:
            raise _NoTrustedAnswer(_unknown("TIMEOUT", "no answer in time")) from error
        except aiohttp.ClientError as error:
            raise _NoTrustedAnswer(_unknown("UNREADABLE", f"answer broken off: {error}")) from error

    def _trusted(self, status: int, headers: Mapping[str, str], raw: bytes) -> _Answer:
        try:
            self._verifier.verify(headers, raw)
            body = json.loads(raw) if raw else {}
        except SignatureRejected as rejected:
            raise _NoTrustedAnswer(_unknown("UNREADABLE", rejected.reason)) from rejected
        except ValueError as error:
            raise _NoTrustedAnswer(_unknown("UNREADABLE", "answer is not JSON")) from error
        if not isinstance(body, dict):
            raise _NoTrustedAnswer(_unknown("UNREADABLE", "answer is not a JSON object"))
        return _Answer(status, body)

    def _failure(self, answer: _Answer) -> ChannelReply:
        code = answer.code
        known = self.error_codes.classify(code) is not ErrorClass.UNKNOWN
        outcome = AttemptOutcome.FAILED if known else AttemptOutcome.UNKNOWN
        message = str(answer.body.get("message") or f"HTTP {answer.status}")
        return ChannelReply(outcome, code=code or f"HTTP_{answer.status}", message=message)

    def _create_payload(self, order: ChargeOrder) -> dict[str, Any]:
        return {
            "appid": self._appid,
            "mchid": self._mchid,
            "description": order.subject,
            "out_trade_no": order.order_id,
            "notify_url": order.notify_url,
            "amount": {"total": order.amount_minor, "currency": order.currency},
        }

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _refund(order: RefundOrder) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "out_trade_no": order.order_id,
        "out_refund_no": order.refund_id,
        "notify_url": order.notify_url,
        "amount": {
            "refund": order.amount_minor,
            "total": order.total_minor,
            "currency": order.currency,
        },
    }
    if order.reason:
        payload["reason"] = order.reason
    return payload


def _transaction_reply(body: Mapping[str, Any]) -> ChannelReply:
    try:
        state = State(body["trade_state"])
        total = int(body["amount"]["total"])
    except (KeyError, TypeError, ValueError):
        return _unknown("UNREADABLE", "transaction lacks its state or amount")
    outcome = payment_outcome(state)
    return ChannelReply(
        outcome,
        channel_ref=body.get("transaction_id") or None,
        code=state.value if outcome is AttemptOutcome.FAILED else None,
        message=str(body.get("trade_state_desc") or state.value),
        amount_minor=total if outcome is AttemptOutcome.SUCCEEDED else None,
    )


def _refund_reply(body: Mapping[str, Any]) -> ChannelReply:
    try:
        status = RefundStatus(body["status"])
        refunded = int(body["amount"]["refund"])
        refund_ref = str(body["refund_id"])
    except (KeyError, TypeError, ValueError):
        return _unknown("UNREADABLE", "refund lacks its status, amount or id")
    outcome = refund_outcome(status)
    return ChannelReply(
        outcome,
        channel_ref=refund_ref,
        code=status.value if outcome is AttemptOutcome.FAILED else None,
        message=status.value,
        amount_minor=refunded,
    )


def _unknown(code: str, message: str) -> ChannelReply:
    return ChannelReply(AttemptOutcome.UNKNOWN, code=code, message=message)


def _unreachable(error: aiohttp.ClientConnectorError) -> ChannelReply:
    return ChannelReply(AttemptOutcome.FAILED, code="UNREACHABLE", message=str(error))
