"""WeChat payouts (merchant transfer batches of one detail): the adapter against the simulator on
loopback, the platform's transfer balance, the payees that fail, and interoperability with the
``wechatpayv3`` SDK's transfer calls."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from wechatpayv3 import WeChatPay, WeChatPayType  # type: ignore[import-untyped]

from channels.base import AttemptOutcome, ChannelReply, ErrorClass, PayoutOrder
from channels.simulator import SimulatorServer, SimulatorSettings
from channels.wechat import MerchantAccount, PlatformKeys, WechatAdapter, WechatSimulator
from channels.wechat.payouts import transfer_batch, transfer_no
from channels.wechat.signing import MerchantSigner, decrypt_sensitive
from channels.wechat.wire import TRANSFER_NO_RULE

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "444F4864EA9B34415E0F10A03C9C6B4B2C5B5B91"
PLATFORM_SERIAL = "PUB_KEY_ID_0119000001092024061100000000001"
APIV3_KEY = "a12d3924fd499edac8a5efc0b1c2d3e4"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
START_BALANCE = 1_000_000


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


SimulatorFactory = Callable[..., Awaitable[Running]]
AdapterFactory = Callable[..., WechatAdapter]
SdkFactory = Callable[..., WeChatPay]


@pytest.fixture
async def simulator_factory(keys: Keys) -> AsyncIterator[SimulatorFactory]:
    servers: list[SimulatorServer] = []

    async def build(balance: int = START_BALANCE, **settings: Any) -> Running:
        merchant = MerchantAccount(MCHID, APPID, MERCHANT_SERIAL, keys.merchant.public_key())
        platform = PlatformKeys(PLATFORM_SERIAL, keys.platform, APIV3_KEY)
        simulator = WechatSimulator(
            merchant, platform, SimulatorSettings(**settings), payout_balance_minor=balance
        )
        server = SimulatorServer(simulator.app)
        servers.append(server)
        return Running(simulator, await server.start())

    yield build
    for server in servers:
        await server.stop()


@pytest.fixture
async def adapter_factory(keys: Keys) -> AsyncIterator[AdapterFactory]:
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


def payout_order(
    payout_id: str, amount: int = 12_345, account: str = OPENID, name: str = "张三"
) -> PayoutOrder:
    return PayoutOrder(payout_id, account, name, amount, "CNY", "创作者收益提现")


async def settled(adapter: WechatAdapter, order: PayoutOrder, within: float = 3.0) -> ChannelReply:
    """Query until the payout ends; when the channel has no record, send it again under the
    same payout id (the channel deduplicates), as the dispatcher does."""
    deadline = time.monotonic() + within
    while True:
        reply = await adapter.query_payout(order.payout_id)
        if adapter.error_codes.means_absent(reply.code):
            reply = await adapter.payout(order)
        if reply.outcome is not AttemptOutcome.PENDING:
            return reply
        assert time.monotonic() < deadline, f"{order.payout_id} still pending"
        await asyncio.sleep(0.01)


# --- paying out -----------------------------------------------------------------------------


async def test_payout_succeeds_and_the_balance_drops_by_exactly_the_amount(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    order = payout_order("po20240601000001", amount=12_345)

    taken = await adapter.payout(order)
    assert taken.outcome is AttemptOutcome.PENDING and taken.message.startswith("1030000")
    done = await settled(adapter, order)
    assert (done.outcome, done.amount_minor) == (AttemptOutcome.SUCCEEDED, 12_345)
    assert done.channel_ref is not None and done.channel_ref.startswith("1040000")
    assert running.simulator.payout_balance_minor == START_BALANCE - 12_345

    # The channel checked the real name it decrypted with the platform key.
    batch = running.simulator.transfers.batches["po20240601000001"]
    assert batch.request.details[0].user_name == "张三"


async def test_the_payee_name_travels_encrypted_for_the_platform_key(keys: Keys) -> None:
    order = payout_order("po-name-1", name="李四")
    body = transfer_batch(order, APPID, keys.platform.public_key())
    sealed = body["transfer_detail_list"][0]["user_name"]
    assert "李四" not in json.dumps(body, ensure_ascii=False)
    assert decrypt_sensitive(keys.platform, sealed) == "李四"
    assert (body["total_amount"], body["total_num"]) == (12_345, 1)
    assert body["out_batch_no"] == body["transfer_detail_list"][0]["out_detail_no"]


async def test_the_same_payout_id_twice_pays_once(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(latency_ms=30, latency_p99_ms=40)
    adapter = adapter_factory(running.base_url)
    order = payout_order("po20240601000002", amount=5_000)

    # Sent together: one takes the batch, the other is answered from it (still pending, or
    # already paid if the batch finished in between).
    replies = await asyncio.gather(adapter.payout(order), adapter.payout(order))
    pending = {reply.message for reply in replies if reply.outcome is AttemptOutcome.PENDING}
    ended = [reply for reply in replies if reply.outcome is not AttemptOutcome.PENDING]
    assert len(pending) == 1 and all(r.outcome is AttemptOutcome.SUCCEEDED for r in ended)
    paid = await settled(adapter, order)
    again = await adapter.payout(order)  # the batch has finished: answered by its detail
    assert (again.outcome, again.channel_ref) == (AttemptOutcome.SUCCEEDED, paid.channel_ref)
    assert list(running.simulator.transfers.batches) == ["po20240601000002"]
    assert running.simulator.payout_balance_minor == START_BALANCE - 5_000


async def test_the_same_payout_id_with_another_amount_is_refused(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    await adapter.payout(payout_order("po20240601000003", amount=1_000))

    reused = await adapter.payout(payout_order("po20240601000003", amount=2_000))
    assert (reused.outcome, reused.code) == (AttemptOutcome.FAILED, "INVALID_REQUEST")
    assert (await settled(adapter, payout_order("po20240601000003", 1_000))).amount_minor == 1_000
    assert running.simulator.payout_balance_minor == START_BALANCE - 1_000


@pytest.mark.parametrize(
    ("account", "name", "code"),
    [
        ("missing-openid-1", "张三", "ACCOUNT_NOT_EXIST"),
        (OPENID, "Wrong Name", "NAME_NOT_CORRECT"),
    ],
)
async def test_a_missing_payee_or_a_wrong_name_is_final_and_nothing_moves(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    account: str,
    name: str,
    code: str,
) -> None:
    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    order = payout_order("po20240601000004", account=account, name=name)

    assert (await adapter.payout(order)).outcome is AttemptOutcome.PENDING
    failed = await settled(adapter, order)
    assert (failed.outcome, failed.code) == (AttemptOutcome.FAILED, code)
    assert adapter.error_codes.classify(failed.code) is ErrorClass.FINAL
    assert running.simulator.payout_balance_minor == START_BALANCE


async def test_a_channel_refusal_drawn_from_the_success_rate_is_final(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(success_rate=0.0)
    adapter = adapter_factory(running.base_url)
    failed = await settled(adapter, payout_order("po20240601000005"))
    assert (failed.outcome, failed.code) == (AttemptOutcome.FAILED, "TRANSFER_RISK")
    assert adapter.error_codes.classify(failed.code) is ErrorClass.FINAL
    assert running.simulator.payout_balance_minor == START_BALANCE


async def test_insufficient_balance_is_final_with_its_own_code_and_can_be_asked_again(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(balance=500)
    adapter = adapter_factory(running.base_url)
    order = payout_order("po20240601000006", amount=501)

    poor = await adapter.payout(order)
    assert (poor.outcome, poor.code) == (AttemptOutcome.FAILED, "NOT_ENOUGH")
    assert adapter.error_codes.classify(poor.code) is ErrorClass.FINAL
    assert not adapter.error_codes.means_absent(poor.code)
    assert adapter.error_codes.means_absent((await adapter.query_payout(order.payout_id)).code)
    assert running.simulator.payout_balance_minor == 500

    running.simulator.payout_balance_minor += 1  # the operators top up, then ask again
    assert (await settled(adapter, order)).outcome is AttemptOutcome.SUCCEEDED
    assert running.simulator.payout_balance_minor == 0


# --- failures of the call itself ------------------------------------------------------------


async def test_a_slow_channel_is_unknown_timeout_then_the_query_settles_it(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(latency_ms=300, latency_p99_ms=300)
    impatient = adapter_factory(running.base_url, timeout=0.1)
    order = payout_order("po20240601000007", amount=7_000)

    timed_out = await impatient.payout(order)
    assert (timed_out.outcome, timed_out.code) == (AttemptOutcome.UNKNOWN, "TIMEOUT")
    assert impatient.error_codes.classify(timed_out.code) is ErrorClass.UNKNOWN

    running.simulator.settings.update({"latency_ms": 1, "latency_p99_ms": 2})
    done = await settled(adapter_factory(running.base_url), order)
    assert (done.outcome, done.amount_minor) == (AttemptOutcome.SUCCEEDED, 7_000)
    await asyncio.sleep(0.4)  # the late first request is answered from the same batch
    assert len(running.simulator.transfers.batches) == 1
    assert running.simulator.payout_balance_minor == START_BALANCE - 7_000


async def test_a_payout_the_channel_never_took_is_absent(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    adapter = adapter_factory((await simulator_factory()).base_url)
    reply = await adapter.query_payout("po-never-sent")
    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "NOT_FOUND")
    assert adapter.error_codes.means_absent(reply.code)


async def test_an_outage_is_unknown_and_takes_nothing(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory
) -> None:
    running = await simulator_factory(outage=True)
    adapter = adapter_factory(running.base_url)
    order = payout_order("po20240601000008")

    for reply in (await adapter.payout(order), await adapter.query_payout(order.payout_id)):
        assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "SYSTEM_ERROR")
        assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    running.simulator.settings.outage = False
    assert adapter.error_codes.means_absent((await adapter.query_payout(order.payout_id)).code)
    assert running.simulator.payout_balance_minor == START_BALANCE


async def test_a_refused_connection_is_failed_unreachable(adapter_factory: AdapterFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_factory(f"http://127.0.0.1:{port}")
    for reply in (
        await adapter.payout(payout_order("po20240601000009")),
        await adapter.query_payout("po20240601000009"),
    ):
        assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "UNREACHABLE")


async def test_other_currencies_are_refused_before_anything_is_sent(
    adapter_factory: AdapterFactory,
) -> None:
    adapter = adapter_factory("http://127.0.0.1:9")
    order = PayoutOrder("po-usd", OPENID, "张三", 100, "USD", "")
    assert (await adapter.payout(order)).code == "PARAM_ERROR"


# --- the channel's numbers and sensitive fields ---------------------------------------------


@pytest.mark.parametrize(
    "payout_id", ["po-2024-06-01/000010", "p1", "提现-1", "x" * 40, "po_2024_06_01_000010"]
)
async def test_any_payout_id_maps_to_one_stable_number_within_the_rule(
    simulator_factory: SimulatorFactory, adapter_factory: AdapterFactory, payout_id: str
) -> None:
    number = transfer_no(payout_id)
    assert TRANSFER_NO_RULE.fullmatch(number) and number == transfer_no(payout_id)
    assert transfer_no("po20240601000010") == "po20240601000010"
    assert number != transfer_no(payout_id + "x")

    running = await simulator_factory()
    adapter = adapter_factory(running.base_url)
    order = payout_order(payout_id, amount=100)
    assert (await adapter.payout(order)).outcome is AttemptOutcome.PENDING
    assert (await settled(adapter, order)).outcome is AttemptOutcome.SUCCEEDED
    assert list(running.simulator.transfers.batches) == [number]


async def test_a_name_is_read_only_under_the_platform_key_the_request_names(
    simulator_factory: SimulatorFactory, keys: Keys
) -> None:
    running = await simulator_factory()
    path = "/v3/transfer/batches"
    good = transfer_batch(payout_order("po20240601000011"), APPID, keys.platform.public_key())
    garbled = json.loads(json.dumps(good))
    garbled["transfer_detail_list"][0]["user_name"] = "bm90IGEgY2lwaGVydGV4dA=="
    signer = MerchantSigner(MCHID, MERCHANT_SERIAL, keys.merchant)
    attempts = [
        (good, {}),  # no Wechatpay-Serial naming the key
        (good, {"Wechatpay-Serial": "PUB_KEY_ID_SOMEONE_ELSE"}),
        (garbled, {"Wechatpay-Serial": PLATFORM_SERIAL}),
    ]
    async with aiohttp.ClientSession() as session:
        for payload, extra in attempts:
            body = json.dumps(payload).encode()
            headers = {
                "Authorization": signer.authorize("POST", path, body).header(),
                "Content-Type": "application/json",
                **extra,
            }
            async with session.post(running.base_url + path, data=body, headers=headers) as reply:
                assert reply.status == 400
                assert json.loads(await reply.read())["code"] == "PARAM_ERROR"
    assert running.simulator.transfers.batches == {}


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
def sdk_factory(keys: Keys) -> SdkFactory:
    def build(base_url: str, platform: RSAPrivateKey | None = None) -> WeChatPay:
        sdk = WeChatPay(
            wechatpay_type=WeChatPayType.APP,
            mchid=MCHID,
            private_key=pem_private(keys.merchant),
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


def sdk_batch(number: str, amount: int, name: str) -> dict[str, Any]:
    detail = {
        "out_detail_no": number,
        "transfer_amount": amount,
        "transfer_remark": "创作者收益提现",
        "openid": OPENID,
        "user_name": name,  # the SDK encrypts it with the platform key
    }
    return {
        "out_batch_no": number,
        "batch_name": "提现",
        "batch_remark": "创作者收益提现",
        "total_amount": amount,
        "total_num": 1,
        "transfer_detail_list": [detail],
    }


async def sdk_detail(sdk: WeChatPay, number: str, within: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        code, text = await asyncio.to_thread(
            sdk.transfer_query_out_detail_no, out_detail_no=number, out_batch_no=number
        )
        detail: dict[str, Any] = json.loads(text)
        if code != 200 or detail["detail_status"] != "PROCESSING":
            return {"http_status": code, **detail}
        assert time.monotonic() < deadline, f"{number} still processing"
        await asyncio.sleep(0.01)


async def test_the_sdk_pays_out_through_our_simulator_and_verifies_its_answers(
    simulator_factory: SimulatorFactory,
    adapter_factory: AdapterFactory,
    sdk_factory: SdkFactory,
    keys: Keys,
) -> None:
    running = await simulator_factory()
    sdk = sdk_factory(running.base_url)

    # The SDK signs the request and encrypts the name itself; it verifies our answer's
    # signature and raises if it does not hold.
    batch = sdk_batch("sdkpo0001", 1_500, "张三")
    code, text = await asyncio.to_thread(sdk.transfer_batch, **batch)
    taken = json.loads(text)
    assert code == 200 and taken["out_batch_no"] == "sdkpo0001"
    assert taken["batch_status"] == "ACCEPTED"
    stored = running.simulator.transfers.batches["sdkpo0001"].request.details[0]
    assert stored.user_name == "张三"  # what the SDK encrypted, our simulator decrypted
    detail = await sdk_detail(sdk, "sdkpo0001")
    assert (detail["detail_status"], detail["transfer_amount"]) == ("SUCCESS", 1_500)
    assert detail["detail_id"].startswith("1040000") and detail["batch_id"] == taken["batch_id"]
    assert running.simulator.payout_balance_minor == START_BALANCE - 1_500

    # Our adapter reads the same transfer under the same payout id.
    ours = await adapter_factory(running.base_url).query_payout("sdkpo0001")
    assert (ours.outcome, ours.channel_ref) == (AttemptOutcome.SUCCEEDED, detail["detail_id"])

    await asyncio.to_thread(sdk.transfer_batch, **sdk_batch("sdkpo0002", 800, "Wrong Name"))
    refused = await sdk_detail(sdk, "sdkpo0002")
    assert (refused["detail_status"], refused["fail_reason"]) == ("FAIL", "NAME_NOT_CORRECT")

    code, text = await asyncio.to_thread(
        sdk.transfer_query_out_detail_no, out_detail_no="sdkpo9999", out_batch_no="sdkpo9999"
    )
    assert (code, json.loads(text)["code"]) == (404, "NOT_FOUND")
    distrustful = sdk_factory(running.base_url, platform=keys.stranger)
    with pytest.raises(Exception, match="failed to verify the signature"):
        await asyncio.to_thread(
            distrustful.transfer_query_out_detail_no,
            out_detail_no="sdkpo0001",
            out_batch_no="sdkpo0001",
        )
