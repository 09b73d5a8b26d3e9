"""The Alipay-style channel adapter: our orders as open-platform gateway calls.

Charges are server-side captures (alipay.trade.pay with the buyer's payment code), queries
are alipay.trade.query and refunds alipay.trade.refund; payouts are
alipay.fund.trans.uni.transfer and their queries alipay.fund.trans.common.query. All are
idempotent on our ids (out_trade_no, out_request_no, out_biz_no). Every request is signed
with the application's private key and every answer's signature is checked with the
channel's public key before it is believed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.alipay.notices import read_trade_notice
from channels.alipay.payouts import transfer_query_reply, transfer_reply
from channels.alipay.protocol import (
    CHARSET,
    CURRENCY,
    ERROR_RESPONSE_KEY,
    GATEWAY_PATH,
    LOGON_ID,
    NOTICE_ACCEPTED,
    NOTICE_REJECTED,
    PAY,
    QUERY,
    REFUND,
    SHANGHAI,
    SIGN_TYPE,
    TRANSFER,
    TRANSFER_PRODUCT,
    TRANSFER_QUERY,
    TRANSFER_SCENE,
    VERSION,
    channel_time,
    response_key,
)
from channels.alipay.replies import (
    ALIPAY_ERROR_CODES,
    CURRENCY_NOT_SUPPORTED,
    DISCONNECTED,
    TIMEOUT,
    UNREACHABLE,
    UNREADABLE,
    NodeUnreadable,
    pay_reply,
    query_reply,
    refund_reply,
)
from channels.alipay.signing import AnswerUnverified, sign_params, verified_answer
from channels.base import (
    AttemptOutcome,
    ChannelNotice,
    ChannelReply,
    ChargeOrder,
    ErrorCodeMap,
    NoticeAnswer,
    PayoutOrder,
    RefundOrder,
)
from events.money import decimal_text

ReadNode = Callable[[Mapping[str, Any]], ChannelReply]
# The channel's sandbox payment code; a real checkout scans the buyer's own.
SANDBOX_PAYMENT_CODE = "286001234567890123"
# The title on the payee's statement when a payout carries no remark (a withdrawal).
PAYOUT_TITLE = "提现"


def sandbox_payment_code(_: ChargeOrder) -> str:
    """The buyer's payment code for an order when the checkout gave none: the sandbox's."""
    return SANDBOX_PAYMENT_CODE


class GatewayStatus(Exception):
    """The gateway answered with an HTTP status other than 200."""


class AlipayAdapter:
    """One application on the channel's open-platform gateway, over one HTTP session."""

    name = "alipay"
    error_codes: ErrorCodeMap = ALIPAY_ERROR_CODES

    def __init__(
        self,
        base_url: str,
        app_id: str,
        app_private_key: rsa.RSAPrivateKey,
        channel_public_key: rsa.RSAPublicKey,
        timeout_seconds: float = 10.0,
        *,
        payment_code: Callable[[ChargeOrder], str] = sandbox_payment_code,
    ) -> None:
        self.gateway_url = base_url.rstrip("/") + GATEWAY_PATH
        self.app_id = app_id
        self._app_key = app_private_key
        self._channel_key = channel_public_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        # A charge order carries no buyer credential; the checkout supplies the scanned code.
        self._payment_code = payment_code
        self._session: aiohttp.ClientSession | None = None

    async def charge(self, order: ChargeOrder) -> ChannelReply:
        """Capture at once with alipay.trade.pay; asking twice never captures twice."""
        if order.currency != CURRENCY:
            return _currency_refused(order.currency)
        biz = {
            "out_trade_no": order.order_id,
            "scene": "bar_code",
            "auth_code": self._payment_code(order),
            "product_code": "FACE_TO_FACE_PAYMENT",
            "subject": order.subject,
            "total_amount": decimal_text(order.amount_minor, order.currency),
        }
        return await self._call(PAY, biz, pay_reply, notify_url=order.notify_url)

    async def query(self, order_id: str) -> ChannelReply:
        """Where the charge stands, by our order id (alipay.trade.query)."""
        return await self._call(QUERY, {"out_trade_no": order_id}, query_reply)

    async def refund(self, order: RefundOrder) -> ChannelReply:
        """Give money back once per refund id (alipay.trade.refund, out_request_no)."""
        if order.currency != CURRENCY:
            return _currency_refused(order.currency)
        biz = {
            "out_trade_no": order.order_id,
            "out_request_no": order.refund_id,
            "refund_amount": decimal_text(order.amount_minor, order.currency),
        }
        if order.reason:
            biz["refund_reason"] = order.reason
        return await self._call(REFUND, biz, refund_reply)

    async def payout(self, order: PayoutOrder) -> ChannelReply:
        """Transfer to the payee's account once per payout id (alipay.fund.trans.uni.transfer,
        out_biz_no); the channel checks the payee's name against the account."""
        if order.currency != CURRENCY:
            return _currency_refused(order.currency)
        biz: dict[str, Any] = {
            "out_biz_no": order.payout_id,
            "trans_amount": decimal_text(order.amount_minor, order.currency),
            "product_code": TRANSFER_PRODUCT,
            "biz_scene": TRANSFER_SCENE,
            "order_title": order.remark or PAYOUT_TITLE,
            "payee_info": {
                "identity": order.payee_account,
                "identity_type": LOGON_ID,
                "name": order.payee_name,
            },
        }
        if order.remark:
            biz["remark"] = order.remark
        return await self._call(TRANSFER, biz, transfer_reply)

    async def query_payout(self, payout_id: str) -> ChannelReply:
        """Where the payout stands, by our payout id (alipay.fund.trans.common.query); FAILED
        with ORDER_NOT_EXIST when the channel made no transfer under it."""
        biz = {
            "out_biz_no": payout_id,
            "product_code": TRANSFER_PRODUCT,
            "biz_scene": TRANSFER_SCENE,
        }
        return await self._call(TRANSFER_QUERY, biz, transfer_query_reply)

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> ChannelNotice:
        """Verify and decode a notification form; raises NoticeRefused with the reason. The
        notice names this adapter's channel (two channels may share the kind)."""
        return replace(read_trade_notice(body, self.app_id, self._channel_key), channel=self.name)

    def acknowledge(self) -> NoticeAnswer:
        """The body ``success`` is the only answer that stops the re-sends."""
        return _plain_answer(NOTICE_ACCEPTED)

    def refuse(self, reason: str) -> NoticeAnswer:
        """Any other body makes the channel send again; ``fail`` says so plainly."""
        return _plain_answer(NOTICE_REJECTED)

    async def close(self) -> None:
        """Release the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def signed_params(
        self, method: str, biz: Mapping[str, Any], notify_url: str = "", now: datetime | None = None
    ) -> dict[str, str]:
        """A call's form parameters, ``sign`` included (also what an SDK would send)."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "charset": CHARSET,
            "sign_type": SIGN_TYPE,
            "timestamp": channel_time(now or datetime.now(SHANGHAI)),
            "version": VERSION,
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = sign_params(params, self._app_key)
        return params

    async def _call(
        self, method: str, biz: Mapping[str, Any], read: ReadNode, notify_url: str = ""
    ) -> ChannelReply:
        params = self.signed_params(method, biz, notify_url)
        try:
            body = await self._post(params)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as error:
            # The connection never opened, so the channel cannot have seen the call.
            return ChannelReply(AttemptOutcome.FAILED, code=UNREACHABLE, message=str(error))
        except TimeoutError:
            return ChannelReply(AttemptOutcome.UNKNOWN, code=TIMEOUT, message="no answer in time")
        except aiohttp.ClientError as error:
            return ChannelReply(AttemptOutcome.UNKNOWN, code=DISCONNECTED, message=str(error))
        except (GatewayStatus, UnicodeDecodeError) as error:
            return _unreadable(str(error))
        return self._reply(method, body, read)

    def _reply(self, method: str, body: str, read: ReadNode) -> ChannelReply:
        members = (response_key(method), ERROR_RESPONSE_KEY)
        try:
            return read(verified_answer(body, members, self._channel_key))
        except (AnswerUnverified, NodeUnreadable) as error:
            return _unreadable(str(error))

    async def _post(self, params: Mapping[str, str]) -> str:
        session = self._open_session()
        async with session.post(self.gateway_url, data=dict(params)) as answer:
            raw = await answer.read()
            if answer.status != 200:
                raise GatewayStatus(f"the gateway answered HTTP {answer.status}")
        return raw.decode(CHARSET)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _currency_refused(currency: str) -> ChannelReply:
    # Nothing is sent: this gateway takes yuan only.
    return ChannelReply(
        AttemptOutcome.FAILED,
        code=CURRENCY_NOT_SUPPORTED,
        message=f"the channel takes {CURRENCY} only, not {currency}",
    )


def _unreadable(message: str) -> ChannelReply:
    return ChannelReply(AttemptOutcome.UNKNOWN, code=UNREADABLE, message=message)


def _plain_answer(body: str) -> NoticeAnswer:
    return NoticeAnswer(200, body.encode("ascii"), {"Content-Type": "text/plain; charset=utf-8"})
