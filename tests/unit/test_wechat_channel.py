"""The WeChat Pay v3-style channel: the adapter against the simulator running on loopback, the
callbacks, the ALL bill, and interoperability with the ``wechatpayv3`` SDK we did not write."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from multidict import CIMultiDict
from wechatpayv3 import WeChatPay, WeChatPayType  # type: ignore[import-untyped]

from channels.base import (
    AttemptOutcome,
    ChannelReply,
    ChargeOrder,
    ErrorClass,
    NoticeKind,
    NoticeRefused,
    RefundOrder,
)
from channels.simulator import SimulatorServer, SimulatorSettings
from channels.wechat import (
    BILL_COLUMNS,
    SUMMARY_COLUMNS,
    BillAccount,
    MerchantAccount,
    PlatformKeys,
    WechatAdapter,
    WechatSimulator,
    write_all_bill,
)
from channels.wechat.signing import MerchantSigner, PlatformSigner, PlatformVerifier
from channels.wechat.wire import SHANGHAI

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "444F4864EA9B34415E0F10A03C9C6B4B2C5B5B91"
PLATFORM_SERIAL = "PUB_KEY_ID_0119000001092024061100000000001"
APIV3_KEY = "a12d3924fd499edac8a5efc0b1c2d3e4"
FAST_RESEND = 0.0005  # the 15 s first re-send becomes 7.5 ms


@dataclass(frozen=True)
class Keys:
    merchant: RSAPrivateKey
    platform: RSAPrivateKey
    stranger: RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    def new_key() -> RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(new_key(), new_key(), new_key())


@dataclass
class Running:
    simulator: WechatSimulator
    base_url: str


@pytest.fixture
async def simulator_factory(keys: Keys) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    servers: list[SimulatorServer] = []

    async def build(clock: Callable[[], datetime] | None = None, **settings: Any) -> Running:
        merchant = MerchantAccount(MCHID, APPID, MERCHANT_SERIAL, keys.merchant.public_key())
        platform = PlatformKeys(PLATFORM_SERIAL, keys.platform, APIV3_KEY)
        simulator = WechatSimulator(merchant, platform, SimulatorSettings(**settings), clock=clock)
        server = SimulatorServer(simulator.app)
        servers.append(server)
        return Running(simulator, await server.start())

    yield build
    for server in servers:
        await server.stop()


@pytest.fixture
async def adapter_factory(keys: Keys) -> AsyncIterator[Callable[..., WechatAdapter]]:
    adapters: list[WechatAdapter] = []

    def build(base_url: str, timeout: float = 2.0) -> WechatAdapter:
        adapter = WechatAdapter(
            base_url=base_url,
            mchid=MCHID,
            appid=APPID,
            merchant_key=keys.merchant,
            merchant_serial=MERCHANT_SERIAL,
            platform_key=keys.platform.public_key(),
            platform_serial=PLATFORM_SERIAL,
            apiv3_key=APIV3_KEY,
            timeout=timeout,
        )
        adapters.append(adapter)
        return adapter

    yield build
    for adapter in adapters:
        await adapter.close()


@dataclass
class Receiver:
    """The merchant's callback endpoint: records each callback, answers the listed statuses."""

    answers: list[int]
    url: str = ""
    calls: list[tuple[CIMultiDict[str], bytes]] = field(default_factory=list)
    arrivals: asyncio.Queue[tuple[CIMultiDict[str], bytes]] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.Response:
        call = (CIMultiDict(request.headers), await request.read())
        self.calls.append(call)
        await self.arrivals.put(call)
        return web.Response(status=self.answers.pop(0) if self.answers else 204)

    async def next(self, within: float = 3.0) -> tuple[CIMultiDict[str], bytes]:
        return await asyncio.wait_for(self.arrivals.get(), within)


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    servers: list[SimulatorServer] = []

    async def build(*answers: int) -> Receiver:
        receiver = Receiver(list(answers))
        app = web.Application()
        app.router.add_post("/notify", receiver.handle)
        server = SimulatorServer(app)
        servers.append(server)
        receiver.url = f"{await server.start()}/notify"
        return receiver

    yield build
    for server in servers:
        await server.stop()


SimulatorFactory = Callable[..., Awaitable[Running]]
AdapterFactory = Callable[..., WechatAdapter]
ReceiverFactory = Callable[..., Awaitable[Receiver]]
SdkFactory = Callable[..., WeChatPay]


def charge_order(order_id: str, notify_url: str, amount: int = 1000) -> ChargeOrder:
    return ChargeOrder(order_id, "m-1", amount, "CNY", "会员月卡", notify_url)


def refund_order(order_id: str, refund_id: str, amount: int, total: int = 1000) -> RefundOrder:
    return RefundOrder(order_id, refund_id, amount, "CNY", total, "顾客退货", "")


async def settled(adapter: WechatAdapter, order_id: str, within: float = 3.0) -> ChannelReply:
    deadline = time.monotonic() + within
    while (reply := await adapter.query(order_id)).outcome is AttemptOutcome.PENDING:
        assert time.monotonic() < deadline, f"{order_id} still pending"
        await asyncio.sleep(0.01)
    return reply


# --- payments -------------------------------------------------------------------------------


async def test_charge_is_pending_then_callback_and_query_settle(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    running = await simulator_factory()
    receiver = await receiver_factory()
    adapter = adapter_factory(running.base_url)

    reply = await adapter.charge(charge_order("pay-1", receiver.url))
    assert reply.outcome is AttemptOutcome.PENDING
    assert reply.message.startswith("wx")

    notice = adapter.read_notice(*await receiver.next())
    assert (notice.kind, notice.outcome) == (NoticeKind.PAYMENT, AttemptOutcome.SUCCEEDED)
    assert (notice.order_id, notice.amount_minor, notice.currency) == ("pay-1", 1000, "CNY")
    assert notice.notice_id and notice.occurred_at.tzinfo is not None

    queried = await adapter.query("pay-1")
    assert queried.outcome is AttemptOutcome.SUCCEEDED
    assert (queried.channel_ref, queried.amount_minor) == (notice.channel_ref, 1000)


async def test_charging_twice_creates_one_order(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(latency_ms=50, latency_p99_ms=60)
    adapter = adapter_factory(running.base_url)
    first = await adapter.charge(charge_order("pay-2", "http://127.0.0.1:9/n"))
    second = await adapter.charge(charge_order("pay-2", "http://127.0.0.1:9/n"))
    assert first.outcome is second.outcome is AttemptOutcome.PENDING
    assert first.message == second.message
    assert list(running.simulator.trades) == ["pay-2"]

    paid = await settled(adapter, "pay-2")
    again = await adapter.charge(charge_order("pay-2", "http://127.0.0.1:9/n"))
    assert again.outcome is AttemptOutcome.SUCCEEDED and again.channel_ref == paid.channel_ref
    assert len(running.simulator.book.orders()) == 1

    reused = await adapter.charge(charge_order("pay-2", "http://127.0.0.1:9/n", amount=5))
    assert (reused.outcome, reused.code) == (AttemptOutcome.UNKNOWN, "OUT_TRADE_NO_USED")


async def test_failing_payment_ends_failed_by_query_and_callback(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    running = await simulator_factory(success_rate=0.0)
    receiver = await receiver_factory()
    adapter = adapter_factory(running.base_url)

    assert (await adapter.charge(charge_order("pay-3", receiver.url))).outcome is (
        AttemptOutcome.PENDING
    )
    notice = adapter.read_notice(*await receiver.next())
    assert (notice.order_id, notice.outcome) == ("pay-3", AttemptOutcome.FAILED)

    queried = await adapter.query("pay-3")
    assert (queried.outcome, queried.code) == (AttemptOutcome.FAILED, "PAYERROR")
    assert adapter.error_codes.classify(queried.code) is ErrorClass.FINAL
    assert running.simulator.bill(datetime.now(SHANGHAI).date()).count("pay-3") == 0


async def test_unknown_order_is_failed_order_not_exist(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    adapter = adapter_factory((await simulator_factory()).base_url)
    reply = await adapter.query("never-sent")
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "ORDER_NOT_EXIST")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.RETRYABLE


async def test_unsigned_or_badly_signed_requests_are_refused(
    simulator_factory: SimulatorFactory, keys: Keys
) -> None:
    running = await simulator_factory()
    url = "/v3/pay/transactions/app"
    body = json.dumps(
        {
            "appid": APPID,
            "mchid": MCHID,
            "description": "x",
            "out_trade_no": "pay-4",
            "notify_url": "http://127.0.0.1:9/n",
            "amount": {"total": 1, "currency": "CNY"},
        }
    ).encode()
    genuine = MerchantSigner(MCHID, MERCHANT_SERIAL, keys.merchant)
    impostor = MerchantSigner(MCHID, MERCHANT_SERIAL, keys.stranger)
    attempts = {
        "unsigned": {},
        "wrong key": {"Authorization": impostor.authorize("POST", url, body).header()},
        "body changed": {"Authorization": genuine.authorize("POST", url, b"{}").header()},
        "stale": {
            "Authorization": genuine.authorize("POST", url, body, time.time() - 900).header()
        },
    }
    verifier = PlatformVerifier(PLATFORM_SERIAL, keys.platform.public_key())
    async with aiohttp.ClientSession() as session:
        for name, headers in attempts.items():
            async with session.post(running.base_url + url, data=body, headers=headers) as answer:
                raw = await answer.read()
                assert answer.status == 401, name
                assert json.loads(raw)["code"] == "SIGN_ERROR", name
                verifier.verify(answer.headers, raw)  # even a refusal is signed
    assert running.simulator.trades == {}


# --- failures of the call itself ------------------------------------------------------------


async def test_outage_is_unknown_system_error(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    adapter = adapter_factory((await simulator_factory(outage=True)).base_url)
    reply = await adapter.charge(charge_order("pay-5", "http://127.0.0.1:9/n"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "SYSTEM_ERROR")
    assert adapter.error_codes.classify("SYSTEM_ERROR") is ErrorClass.UNKNOWN


async def test_slow_answer_is_unknown_timeout(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(latency_ms=400, latency_p99_ms=400)
    adapter = adapter_factory(running.base_url, timeout=0.1)
    reply = await adapter.charge(charge_order("pay-6", "http://127.0.0.1:9/n"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "TIMEOUT")


async def test_refused_connection_is_failed_unreachable(adapter_factory: AdapterFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_factory(f"http://127.0.0.1:{port}")
    reply = await adapter.charge(charge_order("pay-7", "http://127.0.0.1:9/n"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "UNREACHABLE")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.RETRYABLE


async def test_answer_signed_by_another_key_is_unreadable(
    simulator_factory: SimulatorFactory, keys: Keys
) -> None:
    running = await simulator_factory()
    adapter = WechatAdapter(
        base_url=running.base_url,
        mchid=MCHID,
        appid=APPID,
        merchant_key=keys.merchant,
        merchant_serial=MERCHANT_SERIAL,
        platform_key=keys.stranger.public_key(),
        platform_serial=PLATFORM_SERIAL,
        apiv3_key=APIV3_KEY,
    )
    try:
        reply = await adapter.charge(charge_order("pay-8", "http://127.0.0.1:9/n"))
    finally:
        await adapter.close()
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "UNREADABLE")


# --- refunds --------------------------------------------------------------------------------


async def test_refunds_full_and_partial_never_above_what_was_captured(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    running = await simulator_factory()
    receiver = await receiver_factory()
    adapter = adapter_factory(running.base_url)
    for order_id in ("pay-9", "pay-10"):
        await adapter.charge(charge_order(order_id, receiver.url))
        assert (await settled(adapter, order_id)).outcome is AttemptOutcome.SUCCEEDED

    part = await adapter.refund(refund_order("pay-9", "ref-1", 300))
    assert (part.outcome, part.amount_minor) == (AttemptOutcome.SUCCEEDED, 300)
    repeat = await adapter.refund(refund_order("pay-9", "ref-1", 300))
    assert repeat.channel_ref == part.channel_ref
    too_much = await adapter.refund(refund_order("pay-9", "ref-2", 701))
    assert (too_much.outcome, too_much.code) == (AttemptOutcome.FAILED, "INVALID_REQUEST")
    rest = await adapter.refund(refund_order("pay-9", "ref-3", 700))
    assert rest.outcome is AttemptOutcome.SUCCEEDED
    assert (await adapter.refund(refund_order("pay-9", "ref-4", 1))).outcome is (
        AttemptOutcome.FAILED
    )
    whole = await adapter.refund(refund_order("pay-10", "ref-5", 1000))
    assert (whole.outcome, whole.amount_minor) == (AttemptOutcome.SUCCEEDED, 1000)

    order = running.simulator.book.get("pay-9")
    assert order is not None and [r.refund_id for r in order.refunds] == ["ref-1", "ref-3"]
    assert (await adapter.query("pay-9")).outcome is AttemptOutcome.SUCCEEDED  # trade_state REFUND

    notices = [adapter.read_notice(*await receiver.next()) for _ in range(5)]
    refunds = {n.refund_id: n for n in notices if n.kind is NoticeKind.REFUND}
    assert set(refunds) == {"ref-1", "ref-3", "ref-5"}
    assert refunds["ref-1"].amount_minor == 300 and refunds["ref-1"].order_id == "pay-9"


# --- callbacks ------------------------------------------------------------------------------


async def test_callbacks_are_resent_until_acknowledged(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    running = await simulator_factory(retry_scale=FAST_RESEND)
    adapter = adapter_factory(running.base_url)
    refusal = adapter.refuse("ledger busy")
    receiver = await receiver_factory(refusal.status, 404, 200, adapter.acknowledge().status)
    await adapter.charge(charge_order("pay-11", receiver.url))

    ids = [json.loads((await receiver.next())[1])["id"] for _ in range(3)]
    await asyncio.sleep(0.1)
    assert len(set(ids)) == 1 and len(receiver.calls) == 3  # 200 stopped it too
    assert running.simulator.notifier.acknowledged == 1

    await adapter.charge(charge_order("pay-12", receiver.url))
    await receiver.next()
    await asyncio.sleep(0.05)
    assert len(receiver.calls) == 4  # the 204 stopped it at once
    assert (refusal.status, json.loads(refusal.body)["code"]) == (500, "FAIL")
    assert (adapter.acknowledge().status, adapter.acknowledge().body) == (204, b"")


async def test_lost_notification_still_settles_by_query(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    running = await simulator_factory(lose_notifications=1.0)
    receiver = await receiver_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-13", receiver.url))
    assert (await settled(adapter, "pay-13")).outcome is AttemptOutcome.SUCCEEDED
    await asyncio.sleep(0.05)
    assert receiver.calls == [] and running.simulator.notifier.lost == 1


async def test_tampered_callbacks_are_refused(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
    keys: Keys,
) -> None:
    running = await simulator_factory()
    receiver = await receiver_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-14", receiver.url))
    headers, body = await receiver.next()
    signer = PlatformSigner(PLATFORM_SERIAL, keys.platform)

    envelope = json.loads(body)
    sealed = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    sealed[0] ^= 1
    envelope["resource"]["ciphertext"] = base64.b64encode(sealed).decode()
    resealed = json.dumps(envelope).encode()
    with pytest.raises(NoticeRefused, match="undecryptable resource"):
        adapter.read_notice(signer.headers(resealed), resealed)
    with pytest.raises(NoticeRefused, match="does not verify"):
        adapter.read_notice(headers, body.replace(b'"id"', b'"Id"'))
    with pytest.raises(NoticeRefused, match="clock skew"):
        adapter.read_notice(signer.headers(body, now=time.time() - 301), body)
    forged = PlatformSigner(PLATFORM_SERIAL, keys.stranger).headers(body)
    with pytest.raises(NoticeRefused):
        adapter.read_notice(forged, body)
    assert adapter.read_notice(headers, body).order_id == "pay-14"


# --- the bill -------------------------------------------------------------------------------

BILL_DAY = date(2024, 6, 1)
EXPECTED_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
EXPECTED_SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


async def test_bill_lists_payments_and_refunds_with_fees_and_a_summary_that_adds_up(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory, tmp_path: Path
) -> None:
    running = await simulator_factory(clock=lambda: datetime(2024, 6, 1, 10, 30, tzinfo=SHANGHAI))
    simulator, adapter = running.simulator, adapter_factory(running.base_url)
    for order_id, amount in (("bill-1", 1000), ("bill-2", 1999)):
        await adapter.charge(charge_order(order_id, "http://127.0.0.1:9/n", amount))
        await settled(adapter, order_id)
    simulator.settings.success_rate = 0.0
    await adapter.charge(charge_order("bill-3", "http://127.0.0.1:9/n", 500))
    await settled(adapter, "bill-3")
    await adapter.refund(refund_order("bill-1", "ref-b1", 300))

    account = BillAccount(APPID, MCHID, simulator.settings.fee_bps)
    path = write_all_bill(tmp_path / "all.csv", simulator.book, BILL_DAY, account, {})
    text = path.read_bytes().decode("utf-8")
    assert not text.startswith("\ufeff")
    lines = text.splitlines()
    assert lines[0] == EXPECTED_HEADER and lines[-2] == EXPECTED_SUMMARY_HEADER
    rows = list(csv.reader(io.StringIO(simulator.bill(BILL_DAY))))
    assert tuple(rows[0]) == BILL_COLUMNS and tuple(rows[-2]) == SUMMARY_COLUMNS
    details, totals = rows[1:-2], rows[-1]
    assert all(value.startswith("`") for row in [*details, totals] for value in row)
    shown = [dict(zip(BILL_COLUMNS, (v[1:] for v in row), strict=True)) for row in details]

    assert [(r["商户订单号"], r["交易状态"]) for r in shown] == [
        ("bill-1", "SUCCESS"),
        ("bill-2", "SUCCESS"),
        ("bill-1", "REFUND"),
    ]
    assert [r["应结订单金额"] for r in shown] == ["10.00", "19.99", "0.00"]
    assert [r["手续费"] for r in shown] == ["0.06", "0.12", "-0.02"]  # 0.60 %, half up
    assert {r["费率"] for r in shown} == {"0.60%"}
    assert (shown[2]["商户退款单号"], shown[2]["退款金额"], shown[2]["退款状态"]) == (
        "ref-b1",
        "3.00",
        "SUCCESS",
    )
    assert shown[0]["交易时间"] == "2024-06-01 10:30:00" and shown[0]["商户号"] == MCHID
    assert [v[1:] for v in totals] == ["3", "29.99", "3.00", "0.00", "0.16", "29.99", "3.00"]

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{running.base_url}/_sim/bill/2024-06-01") as answer,
    ):
        assert await answer.text() == simulator.bill(BILL_DAY)


# --- interoperability with the wechatpayv3 SDK ----------------------------------------------


def pem_private(key: RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key: RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def sdk_factory(keys: Keys) -> Callable[..., WeChatPay]:
    def build(
        base_url: str, merchant: RSAPrivateKey | None = None, platform: RSAPrivateKey | None = None
    ) -> WeChatPay:
        sdk = WeChatPay(
            wechatpay_type=WeChatPayType.APP,
            mchid=MCHID,
            private_key=pem_private(merchant or keys.merchant),
            cert_serial_no=MERCHANT_SERIAL,
            appid=APPID,
            apiv3_key=APIV3_KEY,
            public_key=pem_public(platform or keys.platform),
            public_key_id=PLATFORM_SERIAL,
            timeout=(2, 5),
        )
        # The SDK has no public setting for its gateway; it keeps it on its core.
        sdk._core._gate_way = base_url
        return sdk

    return build


async def test_sdk_accepts_and_decrypts_our_callbacks(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    receiver_factory: ReceiverFactory,
    sdk_factory: SdkFactory,
) -> None:
    running = await simulator_factory()
    receiver = await receiver_factory()
    adapter = adapter_factory(running.base_url)
    sdk = sdk_factory(running.base_url)

    await adapter.charge(charge_order("pay-15", receiver.url))
    headers, body = await receiver.next()
    decoded = sdk.callback(headers, body)
    assert decoded["event_type"] == "TRANSACTION.SUCCESS"
    assert decoded["resource"]["out_trade_no"] == "pay-15"
    assert decoded["resource"]["trade_state"] == "SUCCESS"
    assert decoded["resource"]["amount"]["total"] == 1000

    await adapter.refund(refund_order("pay-15", "ref-15", 400))
    refund = sdk.callback(*await receiver.next())
    assert (refund["event_type"], refund["resource"]["refund_status"]) == (
        "REFUND.SUCCESS",
        "SUCCESS",
    )
    assert sdk.callback(headers, body.replace(b"SUCCESS", b"FAILURE")) is None  # tampered


async def test_simulator_accepts_sdk_requests_and_sdk_verifies_its_answers(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    sdk_factory: SdkFactory,
    keys: Keys,
) -> None:
    running = await simulator_factory()
    sdk = sdk_factory(running.base_url)

    # The SDK signs with its own code; our simulator verifies; the SDK verifies the answer's
    # signature itself and raises if it does not hold.
    code, text = await asyncio.to_thread(
        sdk.pay,
        description="会员月卡",
        out_trade_no="pay-16",
        amount={"total": 1200, "currency": "CNY"},
        notify_url="http://127.0.0.1:9/n",
    )
    assert code == 200 and json.loads(text)["prepay_id"].startswith("wx")
    assert (await settled(adapter_factory(running.base_url), "pay-16")).amount_minor == 1200

    code, text = await asyncio.to_thread(sdk.query, out_trade_no="pay-16")
    assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
    amount = {"refund": 200, "total": 1200, "currency": "CNY"}
    code, text = await asyncio.to_thread(
        sdk.refund, out_refund_no="ref-16", amount=amount, out_trade_no="pay-16"
    )
    assert code == 200 and json.loads(text)["status"] == "SUCCESS"

    impostor = sdk_factory(running.base_url, merchant=keys.stranger)
    code, text = await asyncio.to_thread(impostor.query, out_trade_no="pay-16")
    assert (code, json.loads(text)["code"]) == (401, "SIGN_ERROR")
    distrustful = sdk_factory(running.base_url, platform=keys.stranger)
    with pytest.raises(Exception, match="failed to verify the signature"):
        await asyncio.to_thread(distrustful.query, out_trade_no="pay-16")
