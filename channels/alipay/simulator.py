"""A simulated Alipay-style open-platform gateway: ``/gateway.do`` on loopback.

It verifies each call's RSA2 signature with the application's public key, answers
alipay.trade.pay, .query and .refund from the shared order book and the payouts
(alipay.fund.trans.uni.transfer, alipay.fund.trans.common.query) from the platform's balance,
signs every answer with the channel's private key, and after each capture or refund posts
the asynchronous notification (``trade_status_sync``) to the trade's notify_url on the
channel's re-send schedule until the merchant answers ``success``. The daily trade bill is
served under ``/_sim/bill/YYYY-MM-DD``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.alipay.bill import trade_bill_text
from channels.alipay.protocol import (
    CHARSET,
    ERROR_RESPONSE_KEY,
    GATEWAY_PATH,
    INVALID_ARGUMENTS,
    METHODS,
    MISSING_ARGUMENTS,
    NOTICE_ACCEPTED,
    NOTIFY_TYPE,
    PAY,
    QUERY,
    SHANGHAI,
    SIGN_TYPE,
    TRADE_SUCCESS,
    TRANSFER_METHODS,
    UNAVAILABLE,
    VERSION,
    channel_time,
    channel_time_millis,
    parse_channel_time,
    response_key,
)
from channels.alipay.signing import sign_text, signed_answer, signing_text, verify_params
from channels.alipay.trades import (
    BizRefused,
    Buyer,
    DeskAnswer,
    Node,
    TradeDesk,
    business_failure,
    trade_status,
)
from channels.alipay.transfers import (
    DEFAULT_BALANCE_MINOR,
    DEFAULT_SINGLE_LIMIT_MINOR,
    SimTransfer,
    TransferDesk,
)
from channels.simulator import (
    Behaviour,
    Notifier,
    OrderBook,
    SimOrder,
    SimRefund,
    SimulatorServer,
    SimulatorSettings,
    control_routes,
)
from events.money import decimal_text

# The channel re-sends an unacknowledged notification after 4m, 10m, 10m, 1h, 2h, 6h and 15h.
RESEND_SCHEDULE_SECONDS = (240.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)
NOTIFY_TIMEOUT_SECONDS = 5.0
DEFAULT_SELLER_ID = "2088101122136241"

_REQUIRED = (
    ("method", "isv.missing-method", "缺少方法名参数"),
    ("app_id", "isv.missing-app-id", "缺少AppID参数"),
    ("sign_type", "isv.missing-signature-type", "缺少签名类型参数"),
    ("sign", "isv.missing-signature", "缺少签名参数"),
    ("timestamp", "isv.missing-timestamp", "缺少时间戳参数"),
    ("version", "isv.missing-version", "缺少版本参数"),
)


@dataclass(frozen=True)
class SimulatorKeys:
    """What the simulated gateway holds: its own private key and the application's public key."""

    channel_private_key: rsa.RSAPrivateKey
    app_public_key: rsa.RSAPublicKey


def gateway_failure(code: str, sub_code: str, sub_msg: str) -> Node:
    """An answer from the gateway layer, before any business handling."""
    messages = {
        MISSING_ARGUMENTS: "Missing Required Arguments",
        INVALID_ARGUMENTS: "Invalid Arguments",
        UNAVAILABLE: "Service Currently Unavailable",
    }
    return {"code": code, "msg": messages[code], "sub_code": sub_code, "sub_msg": sub_msg}


def outage_answer() -> Node:
    """What the gateway answers while the channel is down: nothing is known to have happened."""
    return gateway_failure(UNAVAILABLE, "isp.unknow-error", "系统繁忙")


def gateway_refusal(
    params: Mapping[str, str], app_id: str, app_key: rsa.RSAPublicKey
) -> Node | None:
    """The gateway's refusal of a call's common parameters or signature, or None to go on."""
    for name, sub_code, sub_msg in _REQUIRED:
        if not params.get(name):
            return gateway_failure(MISSING_ARGUMENTS, sub_code, sub_msg)
    for acceptable, sub_code, sub_msg in _invalid_argument_checks(params, app_id, app_key):
        if not acceptable():
            return gateway_failure(INVALID_ARGUMENTS, sub_code, sub_msg)
    return None


def _invalid_argument_checks(
    params: Mapping[str, str], app_id: str, app_key: rsa.RSAPublicKey
) -> list[tuple[Callable[[], bool], str, str]]:
    return [
        (lambda: params["method"] in METHODS, "isv.invalid-method", "不存在的方法名"),
        (lambda: params["app_id"] == app_id, "isv.invalid-app-id", "无效的AppID参数"),
        (lambda: params["sign_type"] == SIGN_TYPE, "isv.invalid-signature-type", "无效的签名类型"),
        (
            lambda: params.get("charset", CHARSET).lower() == CHARSET,
            "isv.invalid-charset",
            "字符集错误",
        ),
        (lambda: _is_timestamp(params["timestamp"]), "isv.invalid-timestamp", "非法的时间戳参数"),
        (
            lambda: verify_params(params, app_key),
            "isv.invalid-signature",
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",  # noqa: RUF001
        ),
    ]


def _is_timestamp(text: str) -> bool:
    try:
        parse_channel_time(text)
    except ValueError:
        return False
    return True


def _now() -> datetime:
    return datetime.now(SHANGHAI)


class AlipaySimulator:
    """The simulated gateway: settings, order book, keys, notifier and its web application."""

    def __init__(
        self,
        app_id: str,
        keys: SimulatorKeys,
        settings: SimulatorSettings | None = None,
        *,
        seller_id: str = DEFAULT_SELLER_ID,
        seed: int = 7,
        clock: Callable[[], datetime] = _now,
        payout_balance_minor: int = DEFAULT_BALANCE_MINOR,
        payout_single_limit_minor: int = DEFAULT_SINGLE_LIMIT_MINOR,
    ) -> None:
        self.app_id = app_id
        self.keys = keys
        self.settings = settings or SimulatorSettings()
        self.seller_id = seller_id
        self.behaviour = Behaviour(self.settings, seed)
        self.book = OrderBook(ref_prefix="")
        self.notifier = Notifier(RESEND_SCHEDULE_SECONDS, self.behaviour)
        self.buyer = Buyer()
        self._desk = TradeDesk(self.book, self.behaviour, self.buyer)
        self._transfers = TransferDesk(
            self.behaviour, payout_balance_minor, payout_single_limit_minor
        )
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self.app = self._application()

    def bill(self, day: date) -> str:
        """The daily trade bill for ``day`` (Beijing time) from the order book."""
        return trade_bill_text(self.book, day, account=self.seller_id, exported_at=self._clock())

    @property
    def payout_balance_minor(self) -> int:
        """What the platform's account holds for payouts; each transfer draws it down."""
        return self._transfers.balance_minor

    @payout_balance_minor.setter
    def payout_balance_minor(self, amount_minor: int) -> None:
        self._transfers.balance_minor = amount_minor

    def payout(self, payout_id: str) -> SimTransfer | None:
        """The transfer made under our payout id, if the channel made one."""
        return self._transfers.get(payout_id)

    def payouts(self) -> list[SimTransfer]:
        """Every transfer made, oldest first."""
        return self._transfers.transfers()

    def server(self, port: int = 0, host: str = "127.0.0.1") -> SimulatorServer:
        """A loopback server for this simulator (``async with`` it, or start and stop it)."""
        return SimulatorServer(self.app, port=port, host=host)

    def _application(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post(GATEWAY_PATH, self._gateway),
                # The channel's SDKs also send every parameter in a GET query string.
                web.get(GATEWAY_PATH, self._gateway),
                *control_routes(self.settings, self.bill),
            ]
        )
        app.cleanup_ctx.append(self._notifier_session)
        return app

    async def _notifier_session(self, _: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT_SECONDS)
        self._session = aiohttp.ClientSession(timeout=timeout)
        yield
        await self.notifier.close()
        await self._session.close()
        self._session = None

    async def _gateway(self, request: web.Request) -> web.Response:
        params = await _request_params(request)
        method = params.get("method", "")
        member = response_key(method) if method in METHODS else ERROR_RESPONSE_KEY
        # The order is booked first: money moves even when the answer arrives too late.
        node = self._answer(method, params)
        await self.behaviour.answer_delay()
        body = signed_answer(member, node, self.keys.channel_private_key)
        return web.Response(text=body, content_type="text/html", charset=CHARSET)

    def _answer(self, method: str, params: Mapping[str, str]) -> Node:
        if self.settings.outage:
            return outage_answer()
        refusal = gateway_refusal(params, self.app_id, self.keys.app_public_key)
        if refusal is not None:
            return refusal
        if method in TRANSFER_METHODS:
            return self._transfers.answer(method, params.get("biz_content", ""), self._clock())
        try:
            biz = _biz_content(params)
        except BizRefused as refused:
            return business_failure(refused.sub_code)
        answer = self._desk_answer(method, biz, params.get("notify_url", ""))
        self._notify_changes(answer)
        return answer.node

    def _desk_answer(self, method: str, biz: Mapping[str, Any], notify_url: str) -> DeskAnswer:
        if method == PAY:
            return self._desk.pay(biz, notify_url, self._clock())
        if method == QUERY:
            return self._desk.query(biz)
        return self._desk.refund(biz, self._clock())

    def _notify_changes(self, answer: DeskAnswer) -> None:
        if answer.captured is not None:
            self._send_notice(answer.captured, self._capture_notice(answer.captured))
        if answer.refunded is not None:
            order, refund = answer.refunded
            self._send_notice(order, self._refund_notice(order, refund))

    def _send_notice(self, order: SimOrder, fields: dict[str, str]) -> None:
        if order.notify_url:
            self.notifier.notify(partial(self._deliver, order.notify_url, fields))

    async def _deliver(self, url: str, fields: Mapping[str, str]) -> bool:
        form = {**fields, "notify_time": channel_time(self._clock())}
        form["sign"] = sign_text(signing_text(form, notice=True), self.keys.channel_private_key)
        if self._session is None:
            raise aiohttp.ClientConnectionError("the simulator is not serving")
        async with self._session.post(url, data=form) as reply:
            return reply.status == 200 and await reply.text() == NOTICE_ACCEPTED

    def _capture_notice(self, order: SimOrder) -> dict[str, str]:
        return self._notice_fields(order, TRADE_SUCCESS)

    def _refund_notice(self, order: SimOrder, refund: SimRefund) -> dict[str, str]:
        return {
            **self._notice_fields(order, trade_status(order)),
            "out_biz_no": refund.refund_id,
            "refund_fee": decimal_text(order.refunded_minor, order.currency),  # the trade's total
            "gmt_refund": channel_time_millis(refund.created_at),
        }

    def _notice_fields(self, order: SimOrder, status: str) -> dict[str, str]:
        paid = decimal_text(order.amount_minor, order.currency)
        fields = {
            "notify_type": NOTIFY_TYPE,
            # One id for every re-send of a notification, so the merchant can tell repeats.
            "notify_id": secrets.token_hex(16),
            "app_id": self.app_id,
            "auth_app_id": self.app_id,
            "charset": CHARSET,
            "version": VERSION,
            "sign_type": SIGN_TYPE,
            "trade_no": order.channel_ref,
            "out_trade_no": order.order_id,
            "trade_status": status,
            "total_amount": paid,
            "receipt_amount": paid,
            "buyer_pay_amount": paid,
            "subject": order.subject,
            "gmt_create": channel_time(order.created_at),
            "gmt_payment": channel_time(order.created_at),
            "seller_id": self.seller_id,
            "buyer_id": self.buyer.user_id,
            "buyer_logon_id": self.buyer.logon_id,
        }
        # The channel sends no empty parameter, so every verifier reads the same signed text.
        return {name: value for name, value in fields.items() if value}


async def _request_params(request: web.Request) -> dict[str, str]:
    params = dict(request.query.items())
    if request.method == "POST":
        form = await request.post()
        params.update((name, value) for name, value in form.items() if isinstance(value, str))
    return params


def _biz_content(params: Mapping[str, str]) -> dict[str, Any]:
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except json.JSONDecodeError:
        raise BizRefused("ACQ.INVALID_PARAMETER") from None
    if not isinstance(biz, dict):
        raise BizRefused("ACQ.INVALID_PARAMETER")
    return biz
