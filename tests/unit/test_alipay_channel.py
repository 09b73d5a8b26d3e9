"""The Alipay-style channel: the adapter against the gateway simulator running on loopback, the
asynchronous notifications, the daily trade bill, and interoperability with the
``python-alipay-sdk`` package we did not write."""

# The channel's bill is written with full-width punctuation, and so are the expectations.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import csv
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from alipay import AliPay  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from channels.alipay import (
    BILL_COLUMNS,
    AlipayAdapter,
    AlipaySimulator,
    SimulatorKeys,
    bill_file_name,
    bill_rows,
    new_private_key,
    private_key_pem,
    public_key_pem,
    write_trade_bill,
)
from channels.alipay.protocol import PAY, SHANGHAI
from channels.alipay.signing import (
    sign_params,
    sign_text,
    signing_text,
    verified_answer,
)
from channels.base import (
    AttemptOutcome,
    ChargeOrder,
    ErrorClass,
    NoticeKind,
    NoticeRefused,
    RefundOrder,
)
from channels.simulator import SimulatorServer, SimulatorSettings, fee_for
from tests.unit.settling import until_settled

APP_ID = "2021000122600001"
FAST_RESEND = 0.0002  # the channel's 4 min first re-send becomes 48 ms
BILL_DAY = date(2024, 5, 1)


@dataclass(frozen=True)
class Keys:
    app: RSAPrivateKey
    channel: RSAPrivateKey
    stranger: RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(new_private_key(), new_private_key(), new_private_key())


@dataclass
class Running:
    simulator: AlipaySimulator
    base_url: str


def quick_settings(**changes: Any) -> SimulatorSettings:
    settings = SimulatorSettings(
        latency_ms=1.0, latency_p99_ms=3.0, notify_delay_ms=5.0, retry_scale=FAST_RESEND
    )
    settings.update(changes)
    return settings


@pytest.fixture
async def simulator_factory(keys: Keys) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    servers: list[SimulatorServer] = []

    async def build(clock: Callable[[], datetime] | None = None, **settings: Any) -> Running:
        simulator_keys = SimulatorKeys(keys.channel, keys.app.public_key())
        extra = {"clock": clock} if clock is not None else {}
        simulator = AlipaySimulator(APP_ID, simulator_keys, quick_settings(**settings), **extra)
        server = simulator.server()
        servers.append(server)
        return Running(simulator, await server.start())

    yield build
    for server in servers:
        await server.stop()


@pytest.fixture
async def adapter_factory(keys: Keys) -> AsyncIterator[Callable[..., AlipayAdapter]]:
    adapters: list[AlipayAdapter] = []

    def build(
        base_url: str,
        timeout: float = 2.0,
        app_key: RSAPrivateKey | None = None,
        channel_key: RSAPrivateKey | None = None,
    ) -> AlipayAdapter:
        adapter = AlipayAdapter(
            base_url,
            APP_ID,
            app_key or keys.app,
            (channel_key or keys.channel).public_key(),
            timeout_seconds=timeout,
        )
        adapters.append(adapter)
        return adapter

    yield build
    for adapter in adapters:
        await adapter.close()


@dataclass
class Receiver:
    """A merchant's notification handler: refuses the first ``refusals``, then acknowledges."""

    adapter: AlipayAdapter
    refusals: int = 0
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        try:
            self.adapter.read_notice(request.headers, body)
        except NoticeRefused as refused:
            answer = self.adapter.refuse(refused.reason)
        else:
            answer = (
                self.adapter.refuse("not yet") if self.refusals > 0 else self.adapter.acknowledge()
            )
            self.refusals -= 1
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    def forms(self) -> list[dict[str, str]]:
        return [dict(parse_qsl(body.decode())) for body in self.bodies]


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    servers: list[SimulatorServer] = []

    async def build(adapter: AlipayAdapter, refusals: int = 0) -> Receiver:
        receiver = Receiver(adapter, refusals)
        app = web.Application()
        app.router.add_post("/alipay/notify", receiver.handle)
        server = SimulatorServer(app)
        servers.append(server)
        receiver.url = await server.start() + "/alipay/notify"
        return receiver

    yield build
    for server in servers:
        await server.stop()


def charge_order(order_id: str, amount_minor: int = 1234, notify_url: str = "") -> ChargeOrder:
    return ChargeOrder(
        order_id=order_id,
        merchant_id="m-1",
        amount_minor=amount_minor,
        currency="CNY",
        subject="会员月卡",
        notify_url=notify_url or "http://127.0.0.1:9/unused",
    )


def refund_order(order_id: str, refund_id: str, amount_minor: int, total: int) -> RefundOrder:
    return RefundOrder(order_id, refund_id, amount_minor, "CNY", total, "客户退货", "")


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


# --- charges, queries, failures -----------------------------------------------------------


async def test_a_charge_asked_twice_captures_once(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    first = await adapter.charge(charge_order("pay-1"))
    second = await adapter.charge(charge_order("pay-1"))
    assert first.outcome is AttemptOutcome.SUCCEEDED
    assert first.amount_minor == 1234
    assert second == first
    assert [order.order_id for order in running.simulator.book.orders()] == ["pay-1"]
    assert (await adapter.query("pay-1")).channel_ref == first.channel_ref


async def test_the_same_order_id_with_another_amount_is_not_captured_again(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-2", 1000))
    again = await adapter.charge(charge_order("pay-2", 2000))
    assert again.code == "ACQ.TRADE_HAS_SUCCESS"
    assert again.outcome is AttemptOutcome.UNKNOWN  # money moved for this order: query it
    assert (await adapter.query("pay-2")).amount_minor == 1000


async def test_a_declined_charge_fails_with_a_final_code(simulator_factory, adapter_factory):
    running = await simulator_factory(success_rate=0.0)
    adapter = adapter_factory(running.base_url)
    reply = await adapter.charge(charge_order("pay-3"))
    assert reply.outcome is AttemptOutcome.FAILED
    assert reply.code == "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    assert adapter.error_codes.classify(reply.code) is ErrorClass.FINAL
    queried = await adapter.query("pay-3")
    assert (queried.outcome, queried.code) == (AttemptOutcome.FAILED, "ACQ.TRADE_HAS_CLOSE")


async def test_an_outage_leaves_the_charge_unknown_until_a_query(
    simulator_factory, adapter_factory
):
    running = await simulator_factory(outage=True)
    adapter = adapter_factory(running.base_url)
    reply = await adapter.charge(charge_order("pay-4"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "isp.unknow-error")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    running.simulator.settings.update({"outage": False})
    settled = await adapter.query("pay-4")
    assert (settled.outcome, settled.code) == (AttemptOutcome.FAILED, "ACQ.TRADE_NOT_EXIST")
    assert adapter.error_codes.classify(settled.code) is ErrorClass.RETRYABLE


async def test_a_slow_answer_times_out_as_unknown_and_a_query_settles_it(
    simulator_factory, adapter_factory
):
    running = await simulator_factory(latency_ms=400.0, latency_p99_ms=400.0)
    adapter = adapter_factory(running.base_url, timeout=0.1)
    reply = await adapter.charge(charge_order("pay-5"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "TIMEOUT")
    running.simulator.settings.update({"latency_ms": 1.0, "latency_p99_ms": 2.0})
    settled = await until_settled(lambda: adapter.query("pay-5"))
    assert (settled.outcome, settled.amount_minor) == (AttemptOutcome.SUCCEEDED, 1234)


async def test_a_refused_connection_is_retryable_as_nothing_was_sent(adapter_factory):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_factory(f"http://127.0.0.1:{port}")
    reply = await adapter.charge(charge_order("pay-6"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "UNREACHABLE")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.RETRYABLE


async def test_an_answer_signed_by_another_key_is_unreadable(
    simulator_factory, adapter_factory, keys
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url, channel_key=keys.stranger)
    reply = await adapter.charge(charge_order("pay-7"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "UNREADABLE")


async def test_a_currency_other_than_yuan_is_refused_before_sending(adapter_factory):
    adapter = adapter_factory("http://127.0.0.1:9")
    order = ChargeOrder("pay-8", "m-1", 100, "USD", "x", "")
    reply = await adapter.charge(order)
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "CURRENCY_NOT_SUPPORTED")


# --- refunds ------------------------------------------------------------------------------


async def test_refunds_partial_then_the_rest_never_above_the_capture(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-10", 1000))
    partial = await adapter.refund(refund_order("pay-10", "ref-1", 300, 1000))
    assert (partial.outcome, partial.amount_minor) == (AttemptOutcome.SUCCEEDED, 300)
    too_much = await adapter.refund(refund_order("pay-10", "ref-2", 701, 1000))
    assert (too_much.outcome, too_much.code) == (
        AttemptOutcome.FAILED,
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    )
    assert adapter.error_codes.classify(too_much.code) is ErrorClass.FINAL
    rest = await adapter.refund(refund_order("pay-10", "ref-3", 700, 1000))
    assert (rest.outcome, rest.amount_minor) == (AttemptOutcome.SUCCEEDED, 700)
    assert running.simulator.book.get("pay-10").refunded_minor == 1000
    closed = await adapter.query("pay-10")
    assert closed.outcome is AttemptOutcome.SUCCEEDED  # paid, then refunded in full
    beyond = await adapter.refund(refund_order("pay-10", "ref-4", 1, 1000))
    assert beyond.outcome is AttemptOutcome.FAILED


async def test_a_refund_is_made_once_per_refund_id(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-11", 1000))
    first = await adapter.refund(refund_order("pay-11", "ref-11", 1000, 1000))
    again = await adapter.refund(refund_order("pay-11", "ref-11", 1000, 1000))
    assert first == again
    assert first.outcome is AttemptOutcome.SUCCEEDED
    assert len(running.simulator.book.get("pay-11").refunds) == 1
    changed = await adapter.refund(refund_order("pay-11", "ref-11", 500, 1000))
    assert changed.code == "ACQ.DISCORDANT_REPEAT_REQUEST"
    unknown_trade = await adapter.refund(refund_order("nobody", "ref-12", 100, 100))
    assert unknown_trade.code == "ACQ.TRADE_NOT_EXIST"


# --- the gateway's signature checks -------------------------------------------------------


async def post_gateway(base_url: str, params: dict[str, str]) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base_url + "/gateway.do", data=params) as answer,
    ):
        return await answer.text()


async def test_a_request_with_a_bad_signature_is_refused(simulator_factory, adapter_factory, keys):
    running = await simulator_factory()
    forger = adapter_factory(running.base_url, app_key=keys.stranger)
    params = forger.signed_params(PAY, {"out_trade_no": "pay-20", "total_amount": "1.00"})
    members = ("alipay_trade_pay_response",)
    node = verified_answer(
        await post_gateway(running.base_url, params), members, keys.channel.public_key()
    )
    assert (node["code"], node["msg"]) == ("40002", "Invalid Arguments")
    assert node["sub_code"] == "isv.invalid-signature"
    reply = await forger.charge(charge_order("pay-20"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "isv.invalid-signature")
    assert forger.error_codes.classify(reply.code) is ErrorClass.RETRYABLE
    assert running.simulator.book.get("pay-20") is None


async def test_a_request_without_a_signature_is_refused(simulator_factory, adapter_factory, keys):
    running = await simulator_factory()
    params = adapter_factory(running.base_url).signed_params(PAY, {"out_trade_no": "pay-21"})
    del params["sign"]
    body = await post_gateway(running.base_url, params)
    node = verified_answer(body, ("alipay_trade_pay_response",), keys.channel.public_key())
    assert (node["code"], node["sub_code"]) == ("40001", "isv.missing-signature")


# --- notifications ------------------------------------------------------------------------


async def test_a_notification_is_resent_until_the_merchant_answers_success(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    receiver = await receiver_factory(adapter, refusals=2)
    reply = await adapter.charge(charge_order("pay-30", 4321, receiver.url))
    notifier = running.simulator.notifier
    await eventually(lambda: notifier.acknowledged == 1)
    assert len(receiver.bodies) == notifier.sent == 3
    notices = [adapter.read_notice({}, body) for body in receiver.bodies]
    assert {notice.notice_id for notice in notices} == {notices[0].notice_id}
    notice = notices[-1]
    assert (notice.kind, notice.outcome) == (NoticeKind.PAYMENT, AttemptOutcome.SUCCEEDED)
    assert (notice.order_id, notice.channel_ref) == ("pay-30", reply.channel_ref)
    assert (notice.amount_minor, notice.currency) == (4321, "CNY")
    assert notice.occurred_at.tzinfo is SHANGHAI


async def test_a_refund_sends_its_own_notification(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    receiver = await receiver_factory(adapter)
    await adapter.charge(charge_order("pay-31", 1000, receiver.url))
    await adapter.refund(refund_order("pay-31", "ref-31", 400, 1000))
    await eventually(lambda: running.simulator.notifier.acknowledged == 2)
    notices = [adapter.read_notice({}, body) for body in receiver.bodies]
    refund = next(notice for notice in notices if notice.kind is NoticeKind.REFUND)
    assert (refund.refund_id, refund.amount_minor) == ("ref-31", 400)
    assert refund.outcome is AttemptOutcome.SUCCEEDED


async def test_lost_notifications_never_arrive_and_a_query_still_settles(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory(lose_notifications=1.0)
    adapter = adapter_factory(running.base_url)
    receiver = await receiver_factory(adapter)
    await adapter.charge(charge_order("pay-32", 500, receiver.url))
    await asyncio.sleep(0.1)
    assert receiver.bodies == []
    assert running.simulator.notifier.lost == 1
    assert (await adapter.query("pay-32")).outcome is AttemptOutcome.SUCCEEDED


async def test_a_tampered_notification_is_refused(
    simulator_factory, adapter_factory, receiver_factory, keys
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    receiver = await receiver_factory(adapter)
    await adapter.charge(charge_order("pay-33", 1000, receiver.url))
    await eventually(lambda: len(receiver.bodies) == 1)
    form = receiver.forms()[0]

    def body(changes: dict[str, str], dropped: tuple[str, ...] = ()) -> bytes:
        fields = {k: v for k, v in {**form, **changes}.items() if k not in dropped}
        return urlencode(fields).encode()

    with pytest.raises(NoticeRefused, match="bad signature"):
        adapter.read_notice({}, body({"total_amount": "0.01"}))
    with pytest.raises(NoticeRefused, match="missing signature"):
        adapter.read_notice({}, body({}, dropped=("sign",)))
    resigned = {**form, "app_id": "2021000000000000"}
    resigned["sign"] = sign_text(signing_text(resigned, notice=True), keys.channel)
    with pytest.raises(NoticeRefused, match="another application"):
        adapter.read_notice({}, body(resigned))
    assert adapter.refuse("bad signature").body == b"fail"
    assert (adapter.acknowledge().status, adapter.acknowledge().body) == (200, b"success")


# --- the daily trade bill -----------------------------------------------------------------


def stepping_clock(start: datetime) -> Callable[[], datetime]:
    moments = (start + timedelta(minutes=step) for step in range(10_000))
    return lambda: next(moments)


async def test_the_trade_bill_lists_captures_and_refunds_with_totals(
    simulator_factory, adapter_factory, tmp_path: Path
):
    clock = stepping_clock(datetime(2024, 5, 1, 10, 0, tzinfo=SHANGHAI))
    running = await simulator_factory(clock=clock)
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-40", 1234))
    await adapter.charge(charge_order("pay-41", 5678))
    await adapter.refund(refund_order("pay-40", "ref-40", 234, 1234))
    running.simulator.settings.update({"success_rate": 0.0})
    await adapter.charge(charge_order("pay-42", 999))  # declined: not on the bill

    path = write_trade_bill(
        tmp_path / bill_file_name(running.simulator.seller_id, BILL_DAY),
        running.simulator.book,
        BILL_DAY,
        account=running.simulator.seller_id,
        exported_at=datetime(2024, 5, 2, 9, 0, tzinfo=SHANGHAI),
    )
    assert path.name == f"{running.simulator.seller_id}_20240501_业务明细.csv"
    lines = path.read_bytes().decode("gbk").splitlines()
    assert lines[0] == "#支付宝业务明细查询"
    assert lines[1] == f"#账号：[{running.simulator.seller_id}]"
    assert lines[2].startswith("#起始日期：[2024年05月01日 00:00:00]")
    assert lines[2].endswith("终止日期：[2024年05月02日 00:00:00]")
    rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    assert tuple(rows[0]) == BILL_COLUMNS
    assert ",".join(rows[0]) == (
        "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
        "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
        "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
        "退款批次号/请求号,服务费（元）,分润（元）,备注"
    )
    details = [dict(zip(BILL_COLUMNS, row, strict=True)) for row in rows[1:]]
    picked = [
        (
            d["商户订单号"],
            d["业务类型"],
            d["订单金额（元）"],
            d["服务费（元）"],
            d["退款批次号/请求号"],
        )
        for d in details
    ]
    assert picked == [
        ("pay-40", "交易", "12.34", "0.07", ""),
        ("pay-41", "交易", "56.78", "0.34", ""),
        ("pay-40", "退款", "-2.34", "0.00", "ref-40"),
    ]
    assert fee_for(1234, 60) == 7 and fee_for(5678, 60) == 34
    summary = [line for line in lines[3:] if line.startswith("#")]
    assert "#交易合计：2笔，商家实收：￥69.12元，商家优惠：￥0.00元，服务费：￥0.41元" in summary
    assert "#退款合计：1笔，商家实收：￥-2.34元，商家优惠：￥0.00元，服务费：￥0.00元" in summary


async def test_the_bill_is_also_served_by_the_control_route(simulator_factory, adapter_factory):
    clock = stepping_clock(datetime(2024, 5, 1, 23, 0, tzinfo=SHANGHAI))
    running = await simulator_factory(clock=clock)
    adapter = adapter_factory(running.base_url)
    await adapter.charge(charge_order("pay-43", 100))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{running.base_url}/_sim/bill/{BILL_DAY}") as answer,
    ):
        text = await answer.text()
    assert [row["商户订单号"] for row in bill_rows(text)] == ["pay-43"]
    assert bill_rows(running.simulator.bill(BILL_DAY + timedelta(days=1))) == []


# --- interoperability with python-alipay-sdk ----------------------------------------------


def sdk_client(app_key: RSAPrivateKey, verifying_key: RSAPrivateKey, gateway: str = "") -> Any:
    sdk = AliPay(
        appid=APP_ID,
        app_private_key_string=private_key_pem(app_key),
        alipay_public_key_string=public_key_pem(verifying_key.public_key()),
        sign_type="RSA2",
    )
    if gateway:
        sdk._gateway = gateway  # the SDK knows only the public gateways
    return sdk


async def test_the_sdk_pays_queries_and_refunds_against_the_simulator(simulator_factory, keys):
    running = await simulator_factory()
    sdk = sdk_client(keys.app, keys.channel, running.base_url + "/gateway.do")
    # The SDK signs with its own code and verifies our signed answers before returning them.
    paid = await asyncio.to_thread(
        sdk.api_alipay_trade_pay,
        "pay-50",
        "bar_code",
        "286001234567890123",
        "会员月卡",
        total_amount="12.34",
    )
    assert (paid["code"], paid["total_amount"]) == ("10000", "12.34")
    queried = await asyncio.to_thread(sdk.api_alipay_trade_query, out_trade_no="pay-50")
    assert queried["trade_status"] == "TRADE_SUCCESS"
    refunded = await asyncio.to_thread(
        sdk.api_alipay_trade_refund, "2.34", out_trade_no="pay-50", out_request_no="ref-50"
    )
    assert refunded["send_back_fee"] == "2.34"
    assert running.simulator.book.get("pay-50").refunded_minor == 234


async def test_a_request_string_the_sdk_signs_is_accepted(simulator_factory, keys):
    running = await simulator_factory()
    sdk = sdk_client(keys.app, keys.channel)
    biz = {
        "out_trade_no": "pay-51",
        "scene": "bar_code",
        "auth_code": "286001234567890123",
        "subject": "会员月卡",
        "total_amount": "3.00",
    }
    signed = sdk.sign_data(sdk.build_body("alipay.trade.pay", biz))
    body = await post_gateway(running.base_url, dict(parse_qsl(signed)))
    node = verified_answer(body, ("alipay_trade_pay_response",), keys.channel.public_key())
    assert (node["code"], node["out_trade_no"]) == ("10000", "pay-51")


async def test_the_sdk_verifies_the_simulators_notifications(
    simulator_factory, adapter_factory, receiver_factory, keys
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    receiver = await receiver_factory(adapter)
    await adapter.charge(charge_order("pay-52", 1000, receiver.url))
    await eventually(lambda: len(receiver.bodies) == 1)
    data = receiver.forms()[0]
    signature = data.pop("sign")
    sdk = sdk_client(keys.app, keys.channel)
    assert sdk.verify(dict(data), signature) is True
    assert sdk.verify({**data, "total_amount": "0.01"}, signature) is False


async def test_the_sdk_accepts_the_adapters_signatures(adapter_factory, keys):
    adapter = adapter_factory("http://127.0.0.1:9")
    biz = {"out_trade_no": "pay-53", "total_amount": "12.34", "subject": "会员月卡"}
    params = adapter.signed_params(PAY, biz, notify_url="http://127.0.0.1:9/notify")
    # PKCS#1 v1.5 is deterministic: the SDK signing the same parameters yields the same sign.
    unsigned = {name: value for name, value in params.items() if name != "sign"}
    sdk_signed = dict(parse_qsl(sdk_client(keys.app, keys.app).sign_data(dict(unsigned))))
    assert sdk_signed["sign"] == params["sign"]
    # The SDK's verify (which leaves sign_type out) accepts what our signing makes.
    verifier = sdk_client(keys.app, keys.app)
    without_type = {name: value for name, value in unsigned.items() if name != "sign_type"}
    assert verifier.verify(dict(without_type), sign_params(without_type, keys.app)) is True
    assert json.loads(params["biz_content"]) == biz
