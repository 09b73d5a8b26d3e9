"""A WeChat Pay v3-style channel on loopback, built on the simulators' shared core.

It verifies every request's merchant signature (401 SIGN_ERROR otherwise), signs every answer
with the platform key, creates app and JSAPI trades idempotently on ``out_trade_no``, lets the
simulated user pay after the set latency, and sends the payment and refund callbacks sealed
under the APIv3 key on the channel's re-send schedule until the merchant answers 200 or 204.
Merchant transfers (payouts) to payees are served by the transfer desk in ``transfers``.

The real channel notifies only successful payments; this one also notifies a failed payment
(event ``TRANSACTION.PAYERROR``) so that a merchant can be tested on both outcomes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from channels.simulator import (
    Behaviour,
    Notifier,
    OrderBook,
    OrderStatus,
    RefundRefused,
    SimOrder,
    SimRefund,
    SimulatorSettings,
    control_routes,
    fee_for,
)
from channels.wechat.bill import BillAccount, all_bill_text
from channels.wechat.signing import (
    PlatformSigner,
    SignatureRejected,
    apiv3_key_bytes,
    parse_authorization,
    verify_request,
)
from channels.wechat.trades import (
    Answer,
    RefundRequest,
    RequestInvalid,
    TradeRequest,
    WechatTrade,
    callback_envelope,
    error_answer,
    json_body,
    parse_refund_request,
    parse_trade_request,
    refund_json,
    refund_notice_json,
    transaction_json,
)
from channels.wechat.transfers import (
    DEFAULT_PAYOUT_BALANCE_MINOR,
    TransferAccount,
    TransferDesk,
)
from channels.wechat.wire import (
    CREATE_PATH,
    QUERY_PATH,
    REFUND_PATH,
    RESEND_SCHEDULE_SECONDS,
    SHANGHAI,
    TRANSFER_BATCH_PATH,
    TRANSFER_DETAIL_PATH,
    TradeState,
)

_DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass(frozen=True)
class MerchantAccount:
    """What the channel knows of a merchant: its ids and its API certificate's public key."""

    mchid: str
    appid: str
    serial_no: str
    public_key: RSAPublicKey


@dataclass(frozen=True)
class PlatformKeys:
    """The channel's own signing key (named by its serial) and the merchant's APIv3 key."""

    serial_no: str
    private_key: RSAPrivateKey
    apiv3_key: bytes | str


Handler = Callable[[web.Request, bytes], Awaitable[Answer]]


class WechatSimulator:
    """The simulated channel: settings, order book, trades, keys and the web application."""

    def __init__(
        self,
        merchant: MerchantAccount,
        platform: PlatformKeys,
        settings: SimulatorSettings | None = None,
        *,
        seed: int = 7,
        clock: Callable[[], datetime] | None = None,
        payout_balance_minor: int = DEFAULT_PAYOUT_BALANCE_MINOR,
    ) -> None:
        self.merchant = merchant
        self.platform_serial = platform.serial_no
        self.apiv3_key = apiv3_key_bytes(platform.apiv3_key)
        self.settings = settings or SimulatorSettings()
        self.behaviour = Behaviour(self.settings, seed)
        self.book = OrderBook(ref_prefix="4200")
        self.trades: dict[str, WechatTrade] = {}
        self.notifier = Notifier(RESEND_SCHEDULE_SECONDS, self.behaviour)
        self._signer = PlatformSigner(platform.serial_no, platform.private_key)
        self._clock = clock or (lambda: datetime.now(SHANGHAI))
        self._payments: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        account = TransferAccount(
            merchant.mchid, merchant.appid, platform.serial_no, platform.private_key
        )
        self.transfers = TransferDesk(
            account, self.behaviour, self._clock, balance_minor=payout_balance_minor
        )
        self.app = self._application()

    @property
    def payout_balance_minor(self) -> int:
        """The merchant's transfer balance in fen, which payouts draw down."""
        return self.transfers.balance_minor

    @payout_balance_minor.setter
    def payout_balance_minor(self, value: int) -> None:
        self.transfers.balance_minor = value

    def bill(self, day: date) -> str:
        """The ALL bill of ``day`` (Shanghai time) from the book."""
        account = BillAccount(self.merchant.appid, self.merchant.mchid, self.settings.fee_bps)
        return all_bill_text(self.book, day, account, self.trades)

    async def close(self) -> None:
        """Stop the simulated users and the pending callbacks; close the delivery session."""
        for task in list(self._payments):
            task.cancel()
        await asyncio.gather(*self._payments, return_exceptions=True)
        await self.transfers.close()
        await self.notifier.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _application(self) -> web.Application:
        app = web.Application()
        create_path = CREATE_PATH.format(trade_type="{trade_type:app|jsapi}")
        query_path = QUERY_PATH.format(out_trade_no="{out_trade_no}")
        detail_path = TRANSFER_DETAIL_PATH.format(
            out_batch_no="{out_batch_no}", out_detail_no="{out_detail_no}"
        )
        app.add_routes(
            [
                web.post(create_path, self._serve(self._create)),
                web.get(query_path, self._serve(self._query)),
                web.post(REFUND_PATH, self._serve(self._refund)),
                web.post(TRANSFER_BATCH_PATH, self._serve(self.transfers.create)),
                web.get(detail_path, self._serve(self.transfers.detail)),
                *control_routes(self.settings, self.bill),
            ]
        )
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _: web.Application) -> None:
        await self.close()

    # --- the HTTP envelope: latency, outage, signatures ---------------------------------------

    def _serve(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            # The request has arrived before the channel is slow to answer it: a caller that
            # gives up waiting cannot tell whether it was acted on.
            body = await request.read()
            await self.behaviour.answer_delay()
            answer = self._admit(request, body) or await handler(request, body)
            return self._signed(answer)

        return serve

    def _admit(self, request: web.Request, body: bytes) -> Answer | None:
        if self.settings.outage:
            return error_answer(500, "SYSTEM_ERROR", "系统错误")
        try:
            self._check_signature(request, body)
        except SignatureRejected as error:
            return error_answer(401, "SIGN_ERROR", error.reason)
        return None

    def _check_signature(self, request: web.Request, body: bytes) -> None:
        authorization = parse_authorization(request.headers.get("Authorization", ""))
        if authorization.serial_no != self.merchant.serial_no:
            raise SignatureRejected(f"unknown merchant serial {authorization.serial_no!r}")
        if authorization.mchid != self.merchant.mchid:
            raise SignatureRejected("mchid does not match the certificate")
        # The signature covers the path and query exactly as sent, before any decoding.
        url = request.raw_path
        verify_request(authorization, request.method, url, body, self.merchant.public_key)

    def _signed(self, answer: Answer) -> web.Response:
        body = json.dumps(answer.payload, ensure_ascii=False).encode()
        return web.Response(
            status=answer.status,
            body=body,
            headers=self._signer.headers(body),
            content_type="application/json",
            charset="utf-8",
        )

    # --- transactions ------------------------------------------------------------------------

    async def _create(self, request: web.Request, body: bytes) -> Answer:
        try:
            wanted = parse_trade_request(json_body(body), request.match_info["trade_type"].upper())
        except RequestInvalid as error:
            return error_answer(400, "PARAM_ERROR", str(error))
        refused = self._merchant_mismatch(wanted)
        if refused is not None:
            return refused
        existing = self.trades.get(wanted.out_trade_no)
        if existing is not None:
            return _repeat_answer(existing, wanted)
        trade = self._open_trade(wanted)
        return Answer(200, {"prepay_id": trade.prepay_id})

    def _merchant_mismatch(self, wanted: TradeRequest) -> Answer | None:
        if wanted.mchid != self.merchant.mchid:
            return error_answer(400, "MCH_NOT_EXISTS", "商户号不存在")
        if wanted.appid != self.merchant.appid:
            return error_answer(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        return None

    def _open_trade(self, wanted: TradeRequest) -> WechatTrade:
        now = self._clock()
        prepay_id = f"wx{now:%d%H%M%S}{secrets.token_hex(12)}"
        trade = WechatTrade(wanted, prepay_id, now)
        self.trades[wanted.out_trade_no] = trade
        task = asyncio.get_running_loop().create_task(self._user_pays(trade))
        self._payments.add(task)
        task.add_done_callback(self._payments.discard)
        return trade

    async def _user_pays(self, trade: WechatTrade) -> None:
        await asyncio.sleep(self.behaviour.answer_seconds())
        paid = self.behaviour.succeeds()
        trade.order = self.book.add_charge(self._book_record(trade, paid))
        trade.state = TradeState.SUCCESS if paid else TradeState.PAYERROR
        event, summary = ("SUCCESS", "支付成功") if paid else ("PAYERROR", "支付失败")
        self._notify(trade.request.notify_url, f"TRANSACTION.{event}", summary, trade)

    def _book_record(self, trade: WechatTrade, paid: bool) -> SimOrder:
        request, now = trade.request, self._clock()
        return SimOrder(
            order_id=request.out_trade_no,
            channel_ref=self.book.next_ref(now),
            amount_minor=request.total,
            currency=request.currency,
            subject=request.description,
            status=OrderStatus.SUCCESS if paid else OrderStatus.FAILED,
            created_at=now,
            fee_minor=fee_for(request.total, self.settings.fee_bps) if paid else 0,
            notify_url=request.notify_url,
            failure_code=None if paid else TradeState.PAYERROR.value,
        )

    async def _query(self, request: web.Request, _: bytes) -> Answer:
        if request.query.get("mchid") != self.merchant.mchid:
            return error_answer(400, "PARAM_ERROR", "mchid is missing or not this merchant")
        trade = self.trades.get(request.match_info["out_trade_no"])
        if trade is None:
            return error_answer(404, "ORDER_NOT_EXIST", "订单不存在")
        return Answer(200, transaction_json(trade))

    # --- refunds -----------------------------------------------------------------------------

    async def _refund(self, _: web.Request, body: bytes) -> Answer:
        try:
            wanted = parse_refund_request(json_body(body))
        except RequestInvalid as error:
            return error_answer(400, "PARAM_ERROR", str(error))
        trade = self.trades.get(wanted.out_trade_no)
        if trade is None:
            return error_answer(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if wanted.total != trade.request.total:
            return error_answer(400, "INVALID_REQUEST", "订单金额与原订单不一致")
        return self._make_refund(trade, wanted)

    def _make_refund(self, trade: WechatTrade, wanted: RefundRequest) -> Answer:
        earlier = self._refund_made(wanted.out_refund_no)
        if earlier is not None:
            return _repeat_refund_answer(trade, earlier, wanted)
        try:
            refund = self.book.refund(
                order_id=wanted.out_trade_no,
                refund_id=wanted.out_refund_no,
                amount_minor=wanted.refund,
                when=self._clock(),
                reason=wanted.reason,
            )
        except RefundRefused as refused:
            return _refund_refusal(refused)
        # Without a notify_url of its own a refund is notified where its payment was.
        notify_url = wanted.notify_url or trade.request.notify_url
        self._notify(notify_url, "REFUND.SUCCESS", "退款成功", trade, refund)
        return Answer(200, refund_json(trade, refund))

    def _refund_made(self, out_refund_no: str) -> tuple[SimOrder, SimRefund] | None:
        for order in self.book.orders():
            for refund in order.refunds:
                if refund.refund_id == out_refund_no:
                    return order, refund
        return None

    # --- callbacks ---------------------------------------------------------------------------

    def _notify(
        self,
        url: str,
        event_type: str,
        summary: str,
        trade: WechatTrade,
        refund: SimRefund | None = None,
    ) -> None:
        resource = transaction_json(trade) if refund is None else refund_notice_json(trade, refund)
        envelope = callback_envelope(event_type, summary, resource, self.apiv3_key, self._clock())
        body = json.dumps(envelope, ensure_ascii=False).encode()
        self.notifier.notify(lambda: self._deliver(url, body))

    async def _deliver(self, url: str, body: bytes) -> bool:
        # Each attempt is signed afresh, so a late re-send still passes the clock-skew check.
        headers = self._signer.headers(body) | {"Content-Type": "application/json"}
        async with self._delivery_session().post(url, data=body, headers=headers) as reply:
            await reply.read()
            return reply.status in (200, 204)

    def _delivery_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=_DELIVERY_TIMEOUT)
        return self._session


def _repeat_answer(trade: WechatTrade, wanted: TradeRequest) -> Answer:
    if not trade.request.same_order(wanted):
        return error_answer(403, "OUT_TRADE_NO_USED", "商户订单号重复")
    if trade.paid:
        return error_answer(403, "ORDERPAID", "该订单已支付")
    if trade.state is not TradeState.NOTPAY:
        return error_answer(400, "ORDER_CLOSED", "当前订单已关闭")
    return Answer(200, {"prepay_id": trade.prepay_id})


def _repeat_refund_answer(
    trade: WechatTrade, earlier: tuple[SimOrder, SimRefund], wanted: RefundRequest
) -> Answer:
    order, refund = earlier
    if order.order_id != wanted.out_trade_no or refund.amount_minor != wanted.refund:
        return error_answer(400, "INVALID_REQUEST", "商户退款单号重复")
    return Answer(200, refund_json(trade, refund))


def _refund_refusal(refused: RefundRefused) -> Answer:
    if refused.code == "ORDER_NOT_FOUND":
        return error_answer(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    if refused.code == "ORDER_NOT_PAID":
        return error_answer(400, "INVALID_REQUEST", "订单未支付")
    return error_answer(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
