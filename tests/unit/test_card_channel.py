"""The card channel in Stripe's shape: simulator, adapter, webhooks and the settlement file, run
for real on loopback, and proved against software we did not write: the stripe SDK's webhook
signatures and the localstripe server."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import stripe
from aiohttp import web

from channels.base import (
    AttemptOutcome,
    ChannelNotice,
    ChargeOrder,
    ErrorClass,
    NoticeKind,
    NoticeRefused,
    RefundOrder,
)
from channels.card import (
    SETTLEMENT_COLUMNS,
    CardAdapter,
    CardSimulator,
    read_settlement,
    settlement_totals,
    webhook_schedule,
    write_settlement,
)
from channels.card.signing import SignatureProblem, signature_header
from channels.card.simulator import DEFAULT_SECRET_KEY, DEFAULT_WEBHOOK_SECRET
from channels.simulator import SimulatorServer, SimulatorSettings, fee_for
from tests.unit.settling import until_settled

FAST = {"latency_ms": 1.0, "latency_p99_ms": 2.0, "notify_delay_ms": 5.0, "retry_scale": 1e-4}
SETTLEMENT_DAY = datetime(2025, 3, 14, 12, 30, tzinfo=UTC)


@dataclass
class RunningSimulator:
    """A card simulator served on loopback."""

    sim: CardSimulator
    url: str


@dataclass
class Receiver:
    """A merchant's webhook endpoint that reads events with a card adapter."""

    adapter: CardAdapter
    refuse_first: int = 0
    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    notices: list[ChannelNotice] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Refuse the first ``refuse_first`` deliveries, then read and acknowledge."""
        body = await request.read()
        self.deliveries.append((dict(request.headers), body))
        if len(self.deliveries) <= self.refuse_first:
            answer = self.adapter.refuse("not ready yet")
        else:
            try:
                self.notices.append(self.adapter.read_notice(request.headers, body))
                answer = self.adapter.acknowledge()
            except NoticeRefused as refused:
                answer = self.adapter.refuse(refused.reason)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def wait_for(self, count: int, seconds: float = 3.0) -> list[ChannelNotice]:
        """The notices read so far, once there are ``count`` of them or time is up."""
        deadline = time.monotonic() + seconds
        while len(self.notices) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.notices

    async def wait_for_order(self, order_id: str, seconds: float) -> list[ChannelNotice]:
        """The notices about one order, once there is one or time is up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            mine = [notice for notice in self.notices if notice.order_id == order_id]
            if mine:
                return mine
            await asyncio.sleep(0.01)
        return []


def charge_order(amount: int = 1999, currency: str = "USD", order_id: str = "") -> ChargeOrder:
    """A charge for a fresh order id unless one is given."""
    return ChargeOrder(
        order_id=order_id or f"pay-{uuid.uuid4().hex[:16]}",
        merchant_id="merchant-7",
        amount_minor=amount,
        currency=currency,
        subject="Roasted coffee beans",
        notify_url="http://127.0.0.1:9/notify",
    )


def refund_order(charged: ChargeOrder, amount: int, refund_id: str = "") -> RefundOrder:
    """A refund of part of ``charged``, under a fresh refund id unless one is given."""
    return RefundOrder(
        order_id=charged.order_id,
        refund_id=refund_id or f"ref-{uuid.uuid4().hex[:16]}",
        amount_minor=amount,
        currency=charged.currency,
        total_minor=charged.amount_minor,
        reason="customer changed their mind",
        notify_url=charged.notify_url,
    )


async def raw_call(
    method: str, url: str, form: Mapping[str, str] | None = None, key: str = "", secret: str = ""
) -> tuple[int, Any]:
    """Call the simulator without the adapter: status and JSON body."""
    headers = {"Authorization": f"Bearer {secret or DEFAULT_SECRET_KEY}"}
    if key:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=form, headers=headers) as response,
    ):
        return response.status, await response.json()


@pytest.fixture
async def simulator_factory() -> AsyncIterator[Callable[..., Awaitable[RunningSimulator]]]:
    """Starts card simulators on loopback with fast settings (overridable); stops them after."""
    servers: list[SimulatorServer] = []

    async def make(
        clock: Callable[[], datetime] | None = None, **settings: Any
    ) -> RunningSimulator:
        options: dict[str, Any] = {"fixed_fee_minor": 30}
        if clock is not None:
            options["clock"] = clock
        sim = CardSimulator(SimulatorSettings(**{**FAST, **settings}), **options)
        server = SimulatorServer(sim.app)
        servers.append(server)
        return RunningSimulator(sim, await server.start())

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def adapter_factory() -> AsyncIterator[Callable[..., CardAdapter]]:
    """Builds card adapters for a base URL; closes their sessions after."""
    made: list[CardAdapter] = []

    def make(base_url: str, timeout: float = 2.0, **options: Any) -> CardAdapter:
        secret_key = options.pop("secret_key", DEFAULT_SECRET_KEY)
        secret = options.pop("webhook_secret", DEFAULT_WEBHOOK_SECRET)
        adapter = CardAdapter(base_url, secret_key, secret, timeout, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
async def receiver_factory(
    adapter_factory: Callable[..., CardAdapter],
) -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """Starts webhook endpoints on loopback that read events with a card adapter."""
    servers: list[SimulatorServer] = []

    async def make(refuse_first: int = 0, webhook_secret: str = DEFAULT_WEBHOOK_SECRET) -> Receiver:
        adapter = adapter_factory("http://127.0.0.1:9", webhook_secret=webhook_secret)
        receiver = Receiver(adapter, refuse_first)
        app = web.Application()
        app.router.add_post("/stripe/webhook", receiver.handle)
        server = SimulatorServer(app)
        servers.append(server)
        receiver.url = await server.start() + "/stripe/webhook"
        return receiver

    yield make
    for server in servers:
        await server.stop()


# --- Charges ---------------------------------------------------------------------------------


async def test_charge_succeeds_and_can_be_found_by_order_id(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.url)
    order = charge_order(1999)

    reply = await adapter.charge(order)

    assert reply.outcome is AttemptOutcome.SUCCEEDED
    assert reply.channel_ref is not None and reply.channel_ref.startswith("pi_")
    assert reply.amount_minor == 1999
    status, intent = await raw_call("GET", f"{running.url}/v1/payment_intents/{reply.channel_ref}")
    assert (status, intent["status"], intent["currency"]) == (200, "succeeded", "usd")
    assert intent["metadata"]["order_id"] == order.order_id
    found = await adapter.query(order.order_id)
    assert (found.outcome, found.channel_ref) == (AttemptOutcome.SUCCEEDED, reply.channel_ref)


async def test_same_order_charged_twice_is_captured_once(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.url)
    order = charge_order(2500)

    first = await adapter.charge(order)
    racing = await asyncio.gather(adapter.charge(order), adapter.charge(order))

    assert {reply.channel_ref for reply in (first, *racing)} == {first.channel_ref}
    assert all(reply.outcome is AttemptOutcome.SUCCEEDED for reply in racing)
    assert len(running.sim.book.orders()) == 1


async def test_declined_card_fails_with_a_final_code(simulator_factory, adapter_factory):
    running = await simulator_factory()
    poor = adapter_factory(
        running.url, payment_method="pm_card_visa_chargeDeclinedInsufficientFunds"
    )

    reply = await poor.charge(charge_order())

    assert reply.outcome is AttemptOutcome.FAILED
    assert reply.code == "insufficient_funds"
    assert reply.channel_ref is not None and reply.channel_ref.startswith("pi_")
    assert poor.error_codes.classify(reply.code) is ErrorClass.FINAL


async def test_success_rate_declines_good_cards_generically(simulator_factory, adapter_factory):
    running = await simulator_factory(success_rate=0.0)
    adapter = adapter_factory(running.url)
    order = charge_order()

    reply = await adapter.charge(order)
    status, body = await raw_call(
        "POST",
        f"{running.url}/v1/payment_intents",
        {"amount": "100", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"},
    )

    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "generic_decline")
    assert status == 402
    assert body["error"]["type"] == "card_error"
    assert body["error"]["decline_code"] == "generic_decline"
    assert body["error"]["payment_intent"]["status"] == "requires_payment_method"
    queried = await adapter.query(order.order_id)
    assert (queried.outcome, queried.code) == (AttemptOutcome.FAILED, "generic_decline")


async def test_same_key_with_another_amount_is_an_idempotency_error(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.url)
    order = charge_order(1000)
    await adapter.charge(order)

    reply = await adapter.charge(charge_order(2000, order_id=order.order_id))
    form = {"amount": "3000", "currency": "usd", "payment_method": "pm_card_visa"}
    status, body = await raw_call(
        "POST", f"{running.url}/v1/payment_intents", {**form, "confirm": "true"}, order.order_id
    )

    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "idempotency_error")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    assert (status, body["error"]["type"]) == (400, "idempotency_error")
    assert len(running.sim.book.orders()) == 1


async def test_keys_replay_the_first_answer_and_are_at_most_255_characters(simulator_factory):
    running = await simulator_factory()
    url = f"{running.url}/v1/payment_intents"
    form = {"amount": "700", "currency": "gbp", "payment_method": "pm_card_visa", "confirm": "true"}
    headers = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}", "Idempotency-Key": "k-1"}

    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=form, headers=headers) as response:
            first = await response.json()
        async with session.post(url, data=form, headers=headers) as response:
            replayed, replayed_header = await response.json(), response.headers
    too_long, body = await raw_call("POST", url, form, key="k" * 256)

    assert replayed == first
    assert replayed_header.get("Idempotent-Replayed") == "true"
    assert (too_long, body["error"]["type"]) == (400, "invalid_request_error")
    assert len(running.sim.book.orders()) == 1


async def test_outage_is_unknown_and_its_answer_is_replayed(simulator_factory, adapter_factory):
    running = await simulator_factory(outage=True)
    adapter = adapter_factory(running.url)
    order = charge_order()

    reply = await adapter.charge(order)
    during = await adapter.query(order.order_id)
    running.sim.settings.update({"outage": False})
    after = await adapter.query(order.order_id)
    repeat = await adapter.charge(order)

    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "api_error")
    assert during.outcome is AttemptOutcome.UNKNOWN
    # Nothing was captured, and a 500 is saved under its key like any answer.
    assert (after.outcome, after.code) == (AttemptOutcome.FAILED, "resource_missing")
    assert (repeat.outcome, repeat.code) == (AttemptOutcome.UNKNOWN, "api_error")
    assert running.sim.book.orders() == []


async def test_timeout_is_unknown_and_query_settles_it(simulator_factory, adapter_factory):
    running = await simulator_factory(latency_ms=400.0, latency_p99_ms=400.0)
    impatient = adapter_factory(running.url, timeout=0.1)
    order = charge_order()

    reply = await impatient.charge(order)
    running.sim.settings.update({"latency_ms": 1.0, "latency_p99_ms": 2.0})
    # The abandoned charge may still be on its way in (a loaded machine reads it late): until
    # it lands the channel has no record of it, and asking again is how it is settled.
    settled = await until_settled(lambda: impatient.query(order.order_id))

    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "TIMEOUT")
    assert settled.outcome is AttemptOutcome.SUCCEEDED
    assert settled.channel_ref == running.sim.book.orders()[0].channel_ref


async def test_wrong_key_and_closed_port(simulator_factory, adapter_factory):
    running = await simulator_factory()
    intruder = adapter_factory(running.url, secret_key="sk_test_wrong")
    nowhere = adapter_factory(f"http://127.0.0.1:{free_loopback_port()}")

    refused = await intruder.charge(charge_order())
    status, body = await raw_call("GET", f"{running.url}/v1/payment_intents/pi_x", secret="sk_x")
    unreachable = await nowhere.charge(charge_order())
    unreachable_query = await nowhere.query("pay-1")

    assert (refused.outcome, refused.code) == (AttemptOutcome.FAILED, "authentication_error")
    assert intruder.error_codes.classify(refused.code) is ErrorClass.RETRYABLE
    assert (status, body["error"]["type"]) == (401, "invalid_request_error")
    assert (unreachable.outcome, unreachable.code) == (AttemptOutcome.FAILED, "UNREACHABLE")
    assert nowhere.error_codes.classify(unreachable.code) is ErrorClass.RETRYABLE
    assert unreachable_query.outcome is AttemptOutcome.UNKNOWN


# --- Refunds ---------------------------------------------------------------------------------


async def test_refunds_never_exceed_the_capture_and_are_idempotent(
    simulator_factory, adapter_factory
):
    running = await simulator_factory()
    adapter = adapter_factory(running.url)
    charged = charge_order(1000)
    await adapter.charge(charged)

    partial = refund_order(charged, 400)
    first = await adapter.refund(partial)
    again = await adapter.refund(partial)
    too_much = await adapter.refund(refund_order(charged, 700))
    rest = await adapter.refund(refund_order(charged, 600))
    beyond = await adapter.refund(refund_order(charged, 1))
    unknown = await adapter.refund(refund_order(charge_order(), 100))

    assert (first.outcome, first.amount_minor) == (AttemptOutcome.SUCCEEDED, 400)
    assert first.channel_ref is not None and first.channel_ref.startswith("re_")
    assert again.channel_ref == first.channel_ref
    assert (too_much.outcome, too_much.code) == (AttemptOutcome.FAILED, "amount_too_large")
    assert (rest.outcome, rest.amount_minor) == (AttemptOutcome.SUCCEEDED, 600)
    assert (beyond.outcome, beyond.code) == (AttemptOutcome.FAILED, "charge_already_refunded")
    assert adapter.error_codes.classify(beyond.code) is ErrorClass.FINAL
    assert (unknown.outcome, unknown.code) == (AttemptOutcome.FAILED, "resource_missing")
    assert running.sim.book.orders()[0].refunded_minor == 1000


# --- Webhooks --------------------------------------------------------------------------------


async def test_webhooks_are_resent_until_acknowledged(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory()
    receiver = await receiver_factory(refuse_first=2)
    running.sim.webhooks.url = receiver.url
    adapter = adapter_factory(running.url)
    charged = charge_order(1500)

    reply = await adapter.charge(charged)
    [paid] = await receiver.wait_for(1)
    await adapter.refund(refund_order(charged, 500, "ref-webhook-1"))
    notices = await receiver.wait_for(2)

    event_ids = {json.loads(body)["id"] for _, body in receiver.deliveries[:3]}
    assert len(event_ids) == 1 and paid.notice_id in event_ids
    assert (paid.kind, paid.outcome) == (NoticeKind.PAYMENT, AttemptOutcome.SUCCEEDED)
    assert (paid.order_id, paid.channel_ref) == (charged.order_id, reply.channel_ref)
    assert (paid.amount_minor, paid.currency) == (1500, "USD")
    refunded = notices[1]
    assert (refunded.kind, refunded.refund_id) == (NoticeKind.REFUND, "ref-webhook-1")
    assert (refunded.order_id, refunded.amount_minor) == (charged.order_id, 500)
    notifier = running.sim.webhooks.notifier
    assert (notifier.sent, notifier.acknowledged) == (4, 2)


async def test_declines_are_notified_as_failed_payments(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory()
    receiver = await receiver_factory()
    running.sim.webhooks.url = receiver.url
    adapter = adapter_factory(running.url, payment_method="pm_card_chargeDeclined")

    await adapter.charge(charge_order())
    [declined] = await receiver.wait_for(1)

    assert (declined.kind, declined.outcome) == (NoticeKind.PAYMENT, AttemptOutcome.FAILED)
    assert json.loads(receiver.deliveries[0][1])["type"] == "payment_intent.payment_failed"


async def test_lost_webhooks_leave_the_query_to_settle(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory(lose_notifications=1.0)
    receiver = await receiver_factory()
    running.sim.webhooks.url = receiver.url
    adapter = adapter_factory(running.url)
    order = charge_order()

    await adapter.charge(order)
    await asyncio.sleep(0.1)
    settled = await adapter.query(order.order_id)

    assert receiver.deliveries == []
    assert running.sim.webhooks.notifier.lost == 1
    assert settled.outcome is AttemptOutcome.SUCCEEDED


async def test_tampered_stale_and_malformed_webhooks_are_refused(adapter_factory):
    adapter = adapter_factory("http://127.0.0.1:9")
    body = json.dumps(paid_event("pay-9", "pi_9")).encode()
    fresh = signature_header(body, [DEFAULT_WEBHOOK_SECRET])
    stale = signature_header(body, [DEFAULT_WEBHOOK_SECRET], int(time.time()) - 301)
    cases = {
        SignatureProblem.MISMATCH: ({"Stripe-Signature": fresh}, body.replace(b"1999", b"9999")),
        SignatureProblem.STALE: ({"Stripe-Signature": stale}, body),
        SignatureProblem.MALFORMED: ({"Stripe-Signature": "t=soon,v1"}, body),
        SignatureProblem.NO_V1: ({"Stripe-Signature": f"t={int(time.time())},v0=ab"}, body),
        SignatureProblem.MISSING: ({}, body),
    }

    for problem, (headers, payload) in cases.items():
        with pytest.raises(NoticeRefused) as refused:
            adapter.read_notice(headers, payload)
        assert refused.value.reason == problem.value
    assert adapter.read_notice({"stripe-signature": fresh}, body).order_id == "pay-9"
    assert adapter.refuse("x").status == 400
    assert adapter.acknowledge().status == 200


async def test_rolled_secrets_sign_together(adapter_factory):
    body = json.dumps(paid_event("pay-10", "pi_10")).encode()
    header = signature_header(body, ["whsec_new", "whsec_old"])
    still_old = adapter_factory("http://127.0.0.1:9", webhook_secret="whsec_old")
    rolled = adapter_factory(
        "http://127.0.0.1:9", webhook_secret="whsec_newer", old_webhook_secrets=["whsec_new"]
    )

    assert header.count("v1=") == 2
    assert still_old.read_notice({"Stripe-Signature": header}, body).channel_ref == "pi_10"
    assert rolled.read_notice({"Stripe-Signature": header}, body).channel_ref == "pi_10"


def test_webhook_schedule_doubles_within_three_days():
    schedule = webhook_schedule()

    assert schedule[:4] == (60.0, 120.0, 240.0, 480.0)
    assert max(schedule) == 8 * 3600
    assert 2 * 24 * 3600 < sum(schedule) <= 3 * 24 * 3600


def paid_event(order_id: str, intent_id: str) -> dict[str, Any]:
    """A payment_intent.succeeded event as Stripe sends it (the fields the adapter reads)."""
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 1999,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"order_id": order_id},
    }
    return {
        "id": f"evt_{intent_id}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent},
    }


# --- Settlement ------------------------------------------------------------------------------


async def test_settlement_file_rows_and_totals(simulator_factory, adapter_factory, tmp_path):
    running = await simulator_factory(clock=lambda: SETTLEMENT_DAY)
    adapter = adapter_factory(running.url)
    first, second, yen = charge_order(1999), charge_order(1000), charge_order(500, "JPY")
    for order in (first, second, yen):
        await adapter.charge(order)
    await adapter_factory(running.url, payment_method="pm_card_chargeDeclined").charge(
        charge_order(777)
    )
    await adapter.refund(refund_order(first, 500, "ref-settle-1"))

    path = write_settlement(running.sim.book, SETTLEMENT_DAY.date(), tmp_path / "card.csv")
    text = path.read_text(encoding="utf-8")
    rows = read_settlement(text)
    async with aiohttp.ClientSession() as session:
        served = await (await session.get(f"{running.url}/_sim/bill/2025-03-14")).text()

    lines = text.splitlines()
    assert lines[0] == ",".join(SETTLEMENT_COLUMNS)
    assert served == text
    assert [row.reporting_category for row in rows] == ["charge"] * 3 + ["refund"]
    first_fee = fee_for(1999, 60) + 30
    assert first_fee == 42
    assert lines[1].split(",")[3:8] == ["usd", "19.99", "0.42", "19.57", "charge"]
    refund_row = rows[3]
    assert (refund_row.gross_minor, refund_row.fee_minor) == (-500, 0)
    assert (refund_row.order_id, refund_row.refund_id) == (first.order_id, "ref-settle-1")
    assert rows[2].currency == "JPY" and lines[3].split(",")[4] == "500"
    totals = settlement_totals(rows)
    usd_fees = first_fee + fee_for(1000, 60) + 30
    assert totals["USD"].gross_minor == 1999 + 1000 - 500
    assert totals["USD"].fee_minor == usd_fees
    assert totals["USD"].net_minor == 1999 + 1000 - 500 - usd_fees
    assert (totals["JPY"].gross_minor, totals["JPY"].fee_minor) == (500, fee_for(500, 60) + 30)
    assert read_settlement(running.sim.bill(date(2025, 3, 15))) == []


# --- Software we did not write: the stripe SDK ----------------------------------------------


async def test_stripe_sdk_verifies_our_simulator_webhooks(
    simulator_factory, adapter_factory, receiver_factory
):
    running = await simulator_factory()
    receiver = await receiver_factory()
    running.sim.webhooks.url = receiver.url
    order = charge_order()
    await adapter_factory(running.url).charge(order)
    await receiver.wait_for(1)
    headers, body = receiver.deliveries[0]

    event = stripe.Webhook.construct_event(
        body.decode(), headers["Stripe-Signature"], DEFAULT_WEBHOOK_SECRET
    )

    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["metadata"]["order_id"] == order.order_id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            body.decode().replace("succeeded", "failed"),
            headers["Stripe-Signature"],
            DEFAULT_WEBHOOK_SECRET,
            300,
        )


async def test_our_adapter_verifies_stripe_sdk_signatures(adapter_factory):
    adapter = adapter_factory("http://127.0.0.1:9")
    payload = json.dumps(paid_event("pay-sdk", "pi_sdk"))
    header = stripe.WebhookSignature.generate_signature_header(payload, DEFAULT_WEBHOOK_SECRET)
    old = stripe.WebhookSignature.generate_signature_header(
        payload, DEFAULT_WEBHOOK_SECRET, timestamp=int(time.time()) - 600
    )
    forged = stripe.WebhookSignature.generate_signature_header(payload, "whsec_someone_else")

    notice = adapter.read_notice({"Stripe-Signature": header}, payload.encode())

    assert (notice.order_id, notice.notice_id) == ("pay-sdk", "evt_pi_sdk")
    for bad, problem in ((old, SignatureProblem.STALE), (forged, SignatureProblem.MISMATCH)):
        with pytest.raises(NoticeRefused) as refused:
            adapter.read_notice({"Stripe-Signature": bad}, payload.encode())
        assert refused.value.reason == problem.value


# --- Software we did not write: localstripe --------------------------------------------------


def free_loopback_port() -> int:
    """A port nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answering(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    """Poll until the server answers an authenticated call; fail if it exits or stays silent."""
    request = urllib.request.Request(
        f"{url}/v1/balance", headers={"Authorization": "Bearer sk_test_localstripe"}
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with {process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise TimeoutError(f"localstripe did not answer on {url} within {seconds} s")


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    """A localstripe server of our own for this module, on a free port."""
    port = free_loopback_port()
    command = [str(Path(sys.executable).with_name("localstripe")), "--port", str(port)]
    # --from-scratch: never load objects another run left in localstripe's store file.
    process = subprocess.Popen(
        [*command, "--from-scratch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, process, seconds=10)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=5)


async def test_localstripe_charge_repeat_and_refund(localstripe_url, adapter_factory):
    # localstripe ignores Idempotency-Key, so the adapter looks before creating.
    adapter = adapter_factory(
        localstripe_url, secret_key="sk_test_localstripe", look_before_create=True
    )
    order = charge_order(4200, "EUR")

    paid = await adapter.charge(order)
    repeat = await adapter.charge(order)
    queried = await adapter.query(order.order_id)
    refund = refund_order(order, 1200)
    refunded = await adapter.refund(refund)
    refunded_again = await adapter.refund(refund)

    assert (paid.outcome, paid.amount_minor) == (AttemptOutcome.SUCCEEDED, 4200)
    assert paid.channel_ref is not None and paid.channel_ref.startswith("pi_")
    assert repeat.channel_ref == queried.channel_ref == paid.channel_ref
    assert (refunded.outcome, refunded.amount_minor) == (AttemptOutcome.SUCCEEDED, 1200)
    assert refunded.channel_ref is not None and refunded.channel_ref.startswith("re_")
    assert refunded_again.channel_ref == refunded.channel_ref
    async with aiohttp.ClientSession() as session:
        listed = await session.get(
            f"{localstripe_url}/v1/refunds",
            params={"payment_intent": paid.channel_ref},
            headers={"Authorization": "Bearer sk_test_localstripe"},
        )
        assert len((await listed.json())["data"]) == 1


async def test_localstripe_decline_is_final(localstripe_url, adapter_factory):
    adapter = adapter_factory(
        localstripe_url,
        secret_key="sk_test_localstripe",
        payment_method="pm_card_chargeCustomerFail",
    )
    order = charge_order()

    declined = await adapter.charge(order)
    queried = await adapter.query(order.order_id)
    nothing = await adapter.query(f"never-{uuid.uuid4().hex}")

    assert (declined.outcome, declined.code) == (AttemptOutcome.FAILED, "card_declined")
    assert adapter.error_codes.classify(declined.code) is ErrorClass.FINAL
    assert (queried.outcome, queried.code) == (AttemptOutcome.FAILED, "card_declined")
    assert (nothing.outcome, nothing.code) == (AttemptOutcome.FAILED, "resource_missing")


async def test_localstripe_webhooks_read_by_our_adapter(
    localstripe_url, adapter_factory, receiver_factory
):
    receiver = await receiver_factory(webhook_secret="whsec_localstripe")
    status, _ = await raw_call_text(
        f"{localstripe_url}/_config/webhooks/paystream",
        {
            "url": receiver.url,
            "secret": "whsec_localstripe",
            "events[]": "payment_intent.succeeded",
        },
    )
    adapter = adapter_factory(localstripe_url, secret_key="sk_test_localstripe")
    order = charge_order(3100)

    paid = await adapter.charge(order)
    # Events of earlier tests' charges may arrive too: localstripe sends each after a second.
    mine = await receiver.wait_for_order(order.order_id, seconds=5)

    assert status == 200
    assert [(n.kind, n.outcome, n.channel_ref) for n in mine] == [
        (NoticeKind.PAYMENT, AttemptOutcome.SUCCEEDED, paid.channel_ref)
    ]
    assert mine[0].amount_minor == 3100


async def raw_call_text(url: str, form: Mapping[str, str]) -> tuple[int, str]:
    """POST a form without auth (localstripe's configuration routes take none)."""
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return response.status, await response.text()
