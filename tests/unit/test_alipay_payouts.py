"""Payouts on the Alipay-style channel: the adapter's transfers (alipay.fund.trans.uni.transfer)
and their queries (alipay.fund.trans.common.query) against the gateway simulator on loopback,
and interoperability with the ``python-alipay-sdk`` package we did not write."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from aiohttp import web
from alipay import AliPay, DCAliPay  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import NameOID

from channels.alipay import (
    INSUFFICIENT_BALANCE,
    AlipayAdapter,
    AlipaySimulator,
    SimulatorKeys,
    new_private_key,
    private_key_pem,
    public_key_pem,
)
from channels.alipay.signing import verify_params
from channels.base import AttemptOutcome, ErrorClass, PayoutOrder
from channels.simulator import SimulatorServer, SimulatorSettings
from tests.unit.settling import until_settled

APP_ID = "2021000122600001"
PAYEE = "creator@example.com"


@dataclass(frozen=True)
class Keys:
    app: RSAPrivateKey
    channel: RSAPrivateKey
    stranger: RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(new_private_key(), new_private_key(), new_private_key())


def quick_settings(**changes: Any) -> SimulatorSettings:
    settings = SimulatorSettings(latency_ms=1.0, latency_p99_ms=3.0)
    settings.update(changes)
    return settings


@dataclass
class Running:
    simulator: AlipaySimulator
    base_url: str


@pytest.fixture
async def simulator_factory(keys: Keys) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    servers: list[SimulatorServer] = []

    async def build(**settings: Any) -> Running:
        simulator_keys = SimulatorKeys(keys.channel, keys.app.public_key())
        simulator = AlipaySimulator(APP_ID, simulator_keys, quick_settings(**settings))
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
        base_url: str, timeout: float = 2.0, channel_key: RSAPrivateKey | None = None
    ) -> AlipayAdapter:
        verifying = (channel_key or keys.channel).public_key()
        adapter = AlipayAdapter(base_url, APP_ID, keys.app, verifying, timeout_seconds=timeout)
        adapters.append(adapter)
        return adapter

    yield build
    for adapter in adapters:
        await adapter.close()


def payout_order(
    payout_id: str,
    amount_minor: int = 1999,
    account: str = PAYEE,
    name: str = "张三",
    currency: str = "CNY",
) -> PayoutOrder:
    return PayoutOrder(payout_id, account, name, amount_minor, currency, "创作者收益提现")


# --- payouts that pay ---------------------------------------------------------------------


async def test_a_payout_pays_the_exact_amount_from_the_platforms_balance(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    simulator = running.simulator
    simulator.payout_balance_minor = 500_000
    adapter = adapter_factory(running.base_url)
    reply = await adapter.payout(payout_order("po-1", 1999))
    assert reply.outcome is AttemptOutcome.SUCCEEDED
    assert reply.channel_ref == simulator.payout("po-1").order_id
    assert simulator.payout_balance_minor == 500_000 - 1999
    made = simulator.payout("po-1").terms
    assert (made.amount_minor, made.identity, made.name) == (1999, PAYEE, "张三")
    queried = await adapter.query_payout("po-1")
    assert (queried.outcome, queried.amount_minor) == (AttemptOutcome.SUCCEEDED, 1999)
    assert queried.channel_ref == reply.channel_ref


async def test_the_payout_request_is_the_transfer_apis_own(adapter_factory, keys):
    forms: list[dict[str, str]] = []

    async def capture(request: web.Request) -> web.Response:
        forms.append({name: str(value) for name, value in (await request.post()).items()})
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/gateway.do", capture)
    async with SimulatorServer(app) as server:
        adapter = adapter_factory(server.base_url)
        paid = await adapter.payout(payout_order("po-2", 100_001))
        await adapter.query_payout("po-2")
    assert paid.outcome is AttemptOutcome.UNKNOWN  # an unsigned answer is never believed
    assert [form["method"] for form in forms] == [
        "alipay.fund.trans.uni.transfer",
        "alipay.fund.trans.common.query",
    ]
    assert all(verify_params(form, keys.app.public_key()) for form in forms)
    assert json.loads(forms[0]["biz_content"]) == {
        "out_biz_no": "po-2",
        "trans_amount": "1000.01",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "order_title": "创作者收益提现",
        "payee_info": {"identity": PAYEE, "identity_type": "ALIPAY_LOGON_ID", "name": "张三"},
        "remark": "创作者收益提现",
    }
    assert json.loads(forms[1]["biz_content"]) == {
        "out_biz_no": "po-2",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
    }


async def test_the_same_payout_id_twice_pays_once(simulator_factory, adapter_factory):
    running = await simulator_factory()
    simulator = running.simulator
    before = simulator.payout_balance_minor
    adapter = adapter_factory(running.base_url)
    first, second = await asyncio.gather(
        adapter.payout(payout_order("po-3", 5000)), adapter.payout(payout_order("po-3", 5000))
    )
    third = await adapter.payout(payout_order("po-3", 5000))
    assert first.outcome is AttemptOutcome.SUCCEEDED
    assert first == second == third
    assert [made.terms.payout_id for made in simulator.payouts()] == ["po-3"]
    assert simulator.payout_balance_minor == before - 5000


async def test_the_same_payout_id_with_another_amount_is_refused(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.payout(payout_order("po-4", 1000))
    balance = running.simulator.payout_balance_minor
    again = await adapter.payout(payout_order("po-4", 2000))
    assert (again.outcome, again.code) == (AttemptOutcome.UNKNOWN, "PAYMENT_INFO_INCONSISTENCY")
    # A transfer already stands under this payout id: the query says which.
    assert adapter.error_codes.classify(again.code) is ErrorClass.UNKNOWN
    assert running.simulator.payout_balance_minor == balance
    assert (await adapter.query_payout("po-4")).amount_minor == 1000


# --- payouts the channel refuses ----------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "name", "amount_minor", "code"),
    [
        ("missing-creator@example.com", "张三", 1999, "PAYEE_NOT_EXIST"),
        (PAYEE, "Wrong Name", 1999, "PAYEE_USER_INFO_ERROR"),
        ("frozen-shop@example.com", "某某小店", 1999, "PAYEE_ACCOUNT_STATUS_ERROR"),
        (PAYEE, "张三", 100_000_01, "EXCEED_LIMIT_SM_AMOUNT"),  # above 100,000 yuan at once
        (PAYEE, "张三", 9, "INVALID_PARAMETER"),  # below the product's 0.10 yuan
    ],
)
async def test_a_payout_the_channel_cannot_make_is_final(
    simulator_factory, adapter_factory, account, name, amount_minor, code
):
    running = await simulator_factory()
    balance = running.simulator.payout_balance_minor
    adapter = adapter_factory(running.base_url)
    reply = await adapter.payout(payout_order("po-5", amount_minor, account, name))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, code)
    assert adapter.error_codes.classify(reply.code) is ErrorClass.FINAL
    assert code not in INSUFFICIENT_BALANCE
    assert running.simulator.payout_balance_minor == balance
    assert running.simulator.payouts() == []


async def test_an_insufficient_balance_is_final_with_its_own_code(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    running.simulator.payout_balance_minor = 1000
    adapter = adapter_factory(running.base_url)
    reply = await adapter.payout(payout_order("po-6", 1001))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "PAYER_BALANCE_NOT_ENOUGH")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.FINAL
    assert reply.code in INSUFFICIENT_BALANCE
    assert running.simulator.payout_balance_minor == 1000
    # Once operators top the account up, the same request pays.
    running.simulator.payout_balance_minor = 10_000
    again = await adapter.payout(payout_order("po-6", 1001))
    assert again.outcome is AttemptOutcome.SUCCEEDED
    assert running.simulator.payout_balance_minor == 10_000 - 1001


async def test_a_currency_other_than_yuan_is_refused_before_sending(adapter_factory):
    adapter = adapter_factory("http://127.0.0.1:9")
    reply = await adapter.payout(payout_order("po-9", currency="USD"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "CURRENCY_NOT_SUPPORTED")


# --- payouts whose outcome is unknown -----------------------------------------------------


async def test_a_slow_channel_times_out_as_unknown_and_the_query_settles_it(
    simulator_factory, adapter_factory
):
    running = await simulator_factory(latency_ms=400.0, latency_p99_ms=400.0)
    adapter = adapter_factory(running.base_url, timeout=0.1)
    reply = await adapter.payout(payout_order("po-10", 2500))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "TIMEOUT")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    running.simulator.settings.update({"latency_ms": 1.0, "latency_p99_ms": 2.0})
    settled = await until_settled(lambda: adapter.query_payout("po-10"))
    assert (settled.outcome, settled.amount_minor) == (AttemptOutcome.SUCCEEDED, 2500)


async def test_a_query_for_an_unknown_payout_says_absent(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    reply = await adapter.query_payout("po-nobody")
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "ORDER_NOT_EXIST")
    assert adapter.error_codes.means_absent(reply.code)


async def test_an_outage_is_unknown_and_an_absent_payout_is_sent_again(
    simulator_factory, adapter_factory
):
    running = await simulator_factory(outage=True)
    adapter = adapter_factory(running.base_url)
    reply = await adapter.payout(payout_order("po-11", 700))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "isp.unknow-error")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    running.simulator.settings.update({"outage": False})
    settled = await adapter.query_payout("po-11")
    assert adapter.error_codes.means_absent(settled.code)
    balance = running.simulator.payout_balance_minor
    resent = await adapter.payout(payout_order("po-11", 700))
    assert resent.outcome is AttemptOutcome.SUCCEEDED
    assert running.simulator.payout_balance_minor == balance - 700


async def test_a_failing_channel_answers_a_system_error_and_moves_nothing(
    simulator_factory, adapter_factory
):
    running = await simulator_factory(success_rate=0.0)
    balance = running.simulator.payout_balance_minor
    adapter = adapter_factory(running.base_url)
    reply = await adapter.payout(payout_order("po-12"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "SYSTEM_ERROR")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    assert adapter.error_codes.means_absent((await adapter.query_payout("po-12")).code)
    assert running.simulator.payout_balance_minor == balance


async def test_a_refused_connection_is_failed_as_nothing_was_sent(adapter_factory):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_factory(f"http://127.0.0.1:{port}")
    reply = await adapter.payout(payout_order("po-13"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "UNREACHABLE")
    queried = await adapter.query_payout("po-13")
    assert (queried.outcome, queried.code) == (AttemptOutcome.FAILED, "UNREACHABLE")


async def test_an_answer_signed_by_another_key_is_unreadable(
    simulator_factory, adapter_factory, keys
):
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url, channel_key=keys.stranger)
    reply = await adapter.payout(payout_order("po-14"))
    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "UNREADABLE")
    assert running.simulator.payout("po-14") is not None  # it paid: only the query can tell


# --- interoperability with python-alipay-sdk ----------------------------------------------


def sdk_client(keys: Keys, gateway: str) -> Any:
    sdk = AliPay(
        appid=APP_ID,
        app_private_key_string=private_key_pem(keys.app),
        alipay_public_key_string=public_key_pem(keys.channel.public_key()),
        sign_type="RSA2",
    )
    sdk._gateway = gateway  # the SDK knows only the public gateways
    return sdk


def certificate(subject: str, key: RSAPublicKey, issuer: str, signer: RSAPrivateKey) -> str:
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_sdk_client(keys: Keys, gateway: str) -> Any:
    # Its dedicated transfer call lives on the certificate-mode client only.
    root = keys.stranger
    sdk = DCAliPay(
        appid=APP_ID,
        app_private_key_string=private_key_pem(keys.app),
        app_public_key_cert_string=certificate("app", keys.app.public_key(), "root", root),
        alipay_public_key_cert_string=certificate(
            "channel", keys.channel.public_key(), "root", root
        ),
        alipay_root_cert_string=certificate("root", root.public_key(), "root", root),
        sign_type="RSA2",
    )
    sdk._gateway = gateway
    return sdk


# The SDK's certificate client reads certificates with pyOpenSSL calls now deprecated.
@pytest.mark.filterwarnings("ignore:X509.get_issuer is deprecated:DeprecationWarning")
async def test_the_sdks_transfer_call_pays_and_verifies_the_answer(simulator_factory, keys):
    running = await simulator_factory()
    sdk = certificate_sdk_client(keys, running.base_url + "/gateway.do")
    transfer = partial(asyncio.to_thread, sdk.api_alipay_fund_trans_uni_transfer)
    paid = await transfer(
        "po-50", "ALIPAY_LOGON_ID", PAYEE, "12.34", name="张三", order_title="提现"
    )
    assert (paid["code"], paid["status"], paid["out_biz_no"]) == ("10000", "SUCCESS", "po-50")
    assert paid["order_id"] == running.simulator.payout("po-50").order_id
    assert running.simulator.payout("po-50").terms.amount_minor == 1234
    missing = await transfer("po-51", "ALIPAY_LOGON_ID", "missing@x.cn", "1.00", name="李四")
    assert (missing["code"], missing["sub_code"]) == ("40004", "PAYEE_NOT_EXIST")


async def test_the_sdk_signs_the_transfer_and_its_query_as_generic_calls(simulator_factory, keys):
    running = await simulator_factory()
    sdk = sdk_client(keys, running.base_url + "/gateway.do")
    biz = {
        "out_biz_no": "po-52",
        "trans_amount": "0.10",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "order_title": "提现",
        "payee_info": {"identity": PAYEE, "identity_type": "ALIPAY_LOGON_ID", "name": "张三"},
    }
    paid = await asyncio.to_thread(sdk.server_api, "alipay.fund.trans.uni.transfer", biz)
    assert (paid["code"], paid["status"]) == ("10000", "SUCCESS")
    queried = await asyncio.to_thread(
        sdk.server_api,
        "alipay.fund.trans.common.query",
        {"out_biz_no": "po-52", "product_code": "TRANS_ACCOUNT_NO_PWD"},
    )
    assert (queried["status"], queried["trans_amount"]) == ("SUCCESS", "0.10")
    assert queried["order_id"] == paid["order_id"]
    absent = await asyncio.to_thread(
        sdk.server_api, "alipay.fund.trans.common.query", {"out_biz_no": "po-nobody"}
    )
    assert absent["sub_code"] == "ORDER_NOT_EXIST"
