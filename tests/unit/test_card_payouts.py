"""Card channel payouts in Stripe Connect's shape: transfers from the platform's balance to
connected accounts, run for real on loopback against the card simulator, and proved against
the stripe SDK's own transfer calls.

Stripe checks who a payee is when the connected account is onboarded, not per transfer, so the
"wrong name" case is a connected account whose requirements are past due (``acct_unverified…``),
which cannot take transfers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import stripe
from aiohttp import web

from channels.base import AttemptOutcome, ChannelNotice, ErrorClass, NoticeKind, PayoutOrder
from channels.card import CardAdapter, CardSimulator
from channels.card.simulator import DEFAULT_SECRET_KEY, DEFAULT_WEBHOOK_SECRET
from channels.simulator import SimulatorServer, SimulatorSettings
from tests.unit.settling import until_settled

FAST = {"latency_ms": 1.0, "latency_p99_ms": 2.0, "notify_delay_ms": 5.0, "retry_scale": 1e-4}
PAYEE = "acct_1PayeeCreator7"


@dataclass
class RunningSimulator:
    """A card simulator served on loopback."""

    sim: CardSimulator
    url: str


@dataclass
class Receiver:
    """A webhook endpoint that reads events with a card adapter and acknowledges them."""

    adapter: CardAdapter
    url: str = ""
    notices: list[ChannelNotice] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Read and acknowledge one event."""
        self.notices.append(self.adapter.read_notice(request.headers, await request.read()))
        answer = self.adapter.acknowledge()
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def wait_for(self, count: int, seconds: float = 3.0) -> list[ChannelNotice]:
        """The notices read so far, once there are ``count`` of them or time is up."""
        deadline = time.monotonic() + seconds
        while len(self.notices) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.notices


def payout_order(
    amount: int = 12_345, payee: str = PAYEE, payout_id: str = "", currency: str = "USD"
) -> PayoutOrder:
    """A payout to ``payee`` under a fresh payout id unless one is given."""
    return PayoutOrder(
        payout_id=payout_id or f"po-{uuid.uuid4().hex[:16]}",
        payee_account=payee,
        payee_name="Mei Lin",
        amount_minor=amount,
        currency=currency,
        remark="Creator earnings, March",
    )


async def list_transfers(url: str, payout_id: str) -> tuple[int, Any]:
    """``GET /v1/transfers?transfer_group=…`` without the adapter."""
    headers = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{url}/v1/transfers", params={"transfer_group": payout_id}, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def post_transfer(url: str, form: dict[str, str], key: str) -> tuple[int, Any, bool]:
    """``POST /v1/transfers`` without the adapter: status, body, whether it was replayed."""
    headers = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}", "Idempotency-Key": key}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/transfers", data=form, headers=headers) as response,
    ):
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return response.status, await response.json(), replayed


def free_loopback_port() -> int:
    """A port nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def simulator_factory() -> AsyncIterator[Callable[..., Awaitable[RunningSimulator]]]:
    """Starts card simulators on loopback with fast settings (overridable); stops them after."""
    servers: list[SimulatorServer] = []

    async def make(balance: int | None = None, **settings: Any) -> RunningSimulator:
        options = {} if balance is None else {"payout_balance_minor": balance}
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

    def make(base_url: str, timeout: float = 2.0) -> CardAdapter:
        adapter = CardAdapter(base_url, DEFAULT_SECRET_KEY, DEFAULT_WEBHOOK_SECRET, timeout)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Serves any application on loopback; stops them after."""
    servers: list[SimulatorServer] = []

    async def start(app: web.Application) -> str:
        server = SimulatorServer(app)
        servers.append(server)
        return await server.start()

    yield start
    for server in servers:
        await server.stop()


# --- Paying ----------------------------------------------------------------------------------


async def test_payout_succeeds_and_the_balance_drops_by_the_amount(
    simulator_factory, adapter_factory
):
    running = await simulator_factory(balance=100_000)
    adapter = adapter_factory(running.url)
    order = payout_order(12_345)

    reply = await adapter.payout(order)
    status, listed = await list_transfers(running.url, order.payout_id)

    assert (reply.outcome, reply.amount_minor) == (AttemptOutcome.SUCCEEDED, 12_345)
    assert reply.channel_ref is not None and reply.channel_ref.startswith("tr_")
    assert running.sim.payout_balance_minor == 100_000 - 12_345
    [transfer] = listed["data"]
    assert (status, transfer["id"], transfer["object"]) == (200, reply.channel_ref, "transfer")
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        12_345,
        "usd",
        PAYEE,
    )
    assert transfer["transfer_group"] == order.payout_id
    assert transfer["description"] == "Creator earnings, March"
    assert transfer["metadata"] == {"payout_id": order.payout_id, "payee_name": "Mei Lin"}
    found = await adapter.query_payout(order.payout_id)
    assert (found.outcome, found.channel_ref) == (AttemptOutcome.SUCCEEDED, reply.channel_ref)
    assert found.amount_minor == 12_345


async def test_zero_decimal_amounts_go_as_they_are(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=1_000_000)
    adapter = adapter_factory(running.url)

    reply = await adapter.payout(payout_order(5_000, currency="JPY"))

    assert (reply.outcome, reply.amount_minor) == (AttemptOutcome.SUCCEEDED, 5_000)
    assert running.sim.transfers.transfers()[0].currency == "JPY"
    assert running.sim.payout_balance_minor == 995_000


async def test_same_payout_twice_pays_once(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=50_000)
    adapter = adapter_factory(running.url)
    order = payout_order(10_000)

    first = await adapter.payout(order)
    racing = await asyncio.gather(adapter.payout(order), adapter.payout(order))
    form = {
        "amount": "10000",
        "currency": "usd",
        "destination": PAYEE,
        "transfer_group": order.payout_id,
        "metadata[payout_id]": order.payout_id,
        "metadata[payee_name]": order.payee_name,
        "description": order.remark,
    }
    status, raw, replayed = await post_transfer(running.url, form, order.payout_id)

    assert {reply.channel_ref for reply in (first, *racing)} == {first.channel_ref}
    assert (status, raw["id"], replayed) == (200, first.channel_ref, True)
    assert all(reply.outcome is AttemptOutcome.SUCCEEDED for reply in racing)
    assert len(running.sim.transfers.transfers()) == 1
    assert running.sim.payout_balance_minor == 40_000


async def test_same_payout_id_with_another_amount_is_refused(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=50_000)
    adapter = adapter_factory(running.url)
    order = payout_order(10_000)
    paid = await adapter.payout(order)

    other = await adapter.payout(payout_order(20_000, payout_id=order.payout_id))
    settled = await adapter.query_payout(order.payout_id)

    # Stripe's idempotency_error: the first payout may have been paid, so the query decides.
    assert (other.outcome, other.code) == (AttemptOutcome.UNKNOWN, "idempotency_error")
    assert adapter.error_codes.classify(other.code) is ErrorClass.UNKNOWN
    assert (settled.outcome, settled.channel_ref) == (AttemptOutcome.SUCCEEDED, paid.channel_ref)
    assert settled.amount_minor == 10_000
    assert running.sim.payout_balance_minor == 40_000


# --- Refusals --------------------------------------------------------------------------------


async def test_missing_and_unverified_payees_are_final(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=50_000)
    adapter = adapter_factory(running.url)
    missing = payout_order(payee="acct_missing_4711")
    unverified = payout_order(payee="acct_unverified_0815")

    no_account = await adapter.payout(missing)
    not_verified = await adapter.payout(unverified)
    form = {"amount": "100", "currency": "usd", "destination": "acct_missing_1"}
    raw_status, raw, _ = await post_transfer(running.url, form, "raw-missing")

    assert (no_account.outcome, no_account.code) == (AttemptOutcome.FAILED, "account_invalid")
    assert "No such destination: 'acct_missing_4711'" in no_account.message
    assert (not_verified.outcome, not_verified.code) == (
        AttemptOutcome.FAILED,
        "transfers_not_allowed",
    )
    assert "requirements are past due" in not_verified.message
    for reply in (no_account, not_verified):
        assert adapter.error_codes.classify(reply.code) is ErrorClass.FINAL
        assert not adapter.error_codes.means_absent(reply.code)
    # On the wire Stripe names the missing account only by resource_missing on `destination`.
    assert (raw_status, raw["error"]["code"], raw["error"]["param"]) == (
        400,
        "resource_missing",
        "destination",
    )
    assert running.sim.payout_balance_minor == 50_000
    assert running.sim.transfers.transfers() == []
    queried = await adapter.query_payout(missing.payout_id)
    assert adapter.error_codes.means_absent(queried.code)


async def test_insufficient_balance_is_final_with_its_own_code(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=1_000)
    adapter = adapter_factory(running.url)
    order = payout_order(1_001)

    refused = await adapter.payout(order)
    running.sim.payout_balance_minor = 5_000
    replayed = await adapter.payout(order)
    fresh = await adapter.payout(payout_order(1_001))

    assert (refused.outcome, refused.code) == (AttemptOutcome.FAILED, "balance_insufficient")
    assert adapter.error_codes.classify(refused.code) is ErrorClass.FINAL
    # Refused while executing, the answer is saved under the payout id as Stripe saves it:
    # after a top-up the payout is re-requested under a new payout id.
    assert (replayed.outcome, replayed.code) == (AttemptOutcome.FAILED, "balance_insufficient")
    assert fresh.outcome is AttemptOutcome.SUCCEEDED
    assert running.sim.payout_balance_minor == 5_000 - 1_001


async def test_success_rate_refuses_transfers_generically(simulator_factory, adapter_factory):
    running = await simulator_factory(success_rate=0.0)
    adapter = adapter_factory(running.url)

    reply = await adapter.payout(payout_order())

    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "transfers_not_allowed")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.FINAL
    assert running.sim.transfers.transfers() == []


# --- When nothing can be trusted -------------------------------------------------------------


async def test_timeout_is_unknown_and_query_payout_settles_it(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=50_000, latency_ms=400.0, latency_p99_ms=400.0)
    impatient = adapter_factory(running.url, timeout=0.1)
    order = payout_order(7_000)

    reply = await impatient.payout(order)
    running.sim.settings.update({"latency_ms": 1.0, "latency_p99_ms": 2.0})
    settled = await until_settled(lambda: impatient.query_payout(order.payout_id))
    again = await impatient.payout(order)

    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "TIMEOUT")
    assert impatient.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    assert (settled.outcome, settled.amount_minor) == (AttemptOutcome.SUCCEEDED, 7_000)
    assert settled.channel_ref == running.sim.transfers.transfers()[0].transfer_id
    assert again.channel_ref == settled.channel_ref
    assert running.sim.payout_balance_minor == 43_000


async def test_query_of_an_unknown_payout_is_absent(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.url)

    reply = await adapter.query_payout(f"never-{uuid.uuid4().hex}")

    assert (reply.outcome, reply.code) == (AttemptOutcome.FAILED, "resource_missing")
    assert adapter.error_codes.means_absent(reply.code)


async def test_outage_is_unknown_and_its_answer_is_replayed(simulator_factory, adapter_factory):
    running = await simulator_factory(balance=50_000, outage=True)
    adapter = adapter_factory(running.url)
    order = payout_order(9_000)

    reply = await adapter.payout(order)
    during = await adapter.query_payout(order.payout_id)
    running.sim.settings.update({"outage": False})
    after = await adapter.query_payout(order.payout_id)
    repeat = await adapter.payout(order)

    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "api_error")
    assert adapter.error_codes.classify(reply.code) is ErrorClass.UNKNOWN
    assert (during.outcome, during.code) == (AttemptOutcome.UNKNOWN, "api_error")
    assert adapter.error_codes.means_absent(after.code)
    # Stripe saves a 500 under its key too: the same payout id keeps answering it.
    assert (repeat.outcome, repeat.code) == (AttemptOutcome.UNKNOWN, "api_error")
    assert running.sim.payout_balance_minor == 50_000


async def test_closed_port_and_unreadable_answers(adapter_factory, serve):
    async def not_json(_: web.Request) -> web.Response:
        return web.Response(text="<html>bad gateway</html>", status=502)

    app = web.Application()
    app.router.add_route("*", "/v1/transfers", not_json)
    garbled = adapter_factory(await serve(app))
    nowhere = adapter_factory(f"http://127.0.0.1:{free_loopback_port()}")
    order = payout_order()

    unreadable = await garbled.payout(order)
    unreachable = await nowhere.payout(order)
    unreachable_query = await nowhere.query_payout(order.payout_id)

    assert (unreadable.outcome, unreadable.code) == (AttemptOutcome.UNKNOWN, "UNREADABLE")
    assert (unreachable.outcome, unreachable.code) == (AttemptOutcome.FAILED, "UNREACHABLE")
    # A lookup that never left proves nothing about the payout.
    assert (unreachable_query.outcome, unreachable_query.code) == (
        AttemptOutcome.UNKNOWN,
        "UNREACHABLE",
    )


async def test_a_transfer_unlike_the_payout_is_unverifiable(adapter_factory, serve):
    async def other_amount(request: web.Request) -> web.Response:
        form = await request.post()
        transfer = {
            "id": "tr_odd",
            "object": "transfer",
            "amount": int(str(form["amount"])) + 1,
            "currency": form["currency"],
            "destination": form["destination"],
        }
        return web.json_response(transfer)

    app = web.Application()
    app.router.add_post("/v1/transfers", other_amount)
    adapter = adapter_factory(await serve(app))

    reply = await adapter.payout(payout_order(500))

    assert (reply.outcome, reply.code) == (AttemptOutcome.UNKNOWN, "UNREADABLE")


# --- The simulator's list and webhooks -------------------------------------------------------


async def test_transfers_list_filters_and_pages(simulator_factory, adapter_factory):
    running = await simulator_factory()
    adapter = adapter_factory(running.url)
    orders = [payout_order(100 + n) for n in range(3)]
    for order in orders:
        await adapter.payout(order)
    headers = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}"}

    async with aiohttp.ClientSession(headers=headers) as session:
        first = await (await session.get(f"{running.url}/v1/transfers?limit=2")).json()
        last_id = first["data"][-1]["id"]
        rest = await (
            await session.get(f"{running.url}/v1/transfers?limit=2&starting_after={last_id}")
        ).json()
        one = await (await session.get(f"{running.url}/v1/transfers/{last_id}")).json()
        missing = await session.get(f"{running.url}/v1/transfers/tr_nothing")

    assert [t["amount"] for t in first["data"]] == [102, 101] and first["has_more"]
    assert [t["amount"] for t in rest["data"]] == [100] and not rest["has_more"]
    assert one["amount"] == 101
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "resource_missing"


async def test_transfer_created_webhook_is_read_as_a_payout_notice(
    simulator_factory, adapter_factory, serve
):
    running = await simulator_factory()
    receiver = Receiver(adapter_factory("http://127.0.0.1:9"))
    app = web.Application()
    app.router.add_post("/stripe/webhook", receiver.handle)
    receiver.url = await serve(app) + "/stripe/webhook"
    running.sim.webhooks.url = receiver.url
    order = payout_order(2_500)

    reply = await adapter_factory(running.url).payout(order)
    [notice] = await receiver.wait_for(1)

    assert (notice.kind, notice.outcome) == (NoticeKind.PAYOUT, AttemptOutcome.SUCCEEDED)
    assert (notice.refund_id, notice.order_id) == (order.payout_id, order.payout_id)
    assert (notice.channel_ref, notice.amount_minor, notice.currency) == (
        reply.channel_ref,
        2_500,
        "USD",
    )


# --- Software we did not write: the stripe SDK ----------------------------------------------


@pytest.fixture
async def stripe_client_factory() -> AsyncIterator[Callable[[str], stripe.StripeClient]]:
    """The stripe SDK's client aimed at a base URL, over its aiohttp transport."""
    transports: list[stripe.AIOHTTPClient] = []

    def make(base_url: str) -> stripe.StripeClient:
        transport = stripe.AIOHTTPClient()
        transports.append(transport)
        return stripe.StripeClient(
            DEFAULT_SECRET_KEY,
            base_addresses={"api": base_url},
            http_client=transport,
            max_network_retries=0,
        )

    yield make
    for transport in transports:
        await transport.close_async()


async def test_stripe_sdk_transfers_against_our_simulator(
    simulator_factory, adapter_factory, stripe_client_factory
):
    running = await simulator_factory(balance=10_000)
    client = stripe_client_factory(running.url)
    adapter = adapter_factory(running.url)
    payout_id = f"po-sdk-{uuid.uuid4().hex[:8]}"
    params: dict[str, Any] = {
        "amount": 4_200,
        "currency": "eur",
        "destination": PAYEE,
        "transfer_group": payout_id,
        "metadata": {"payout_id": payout_id},
    }

    made = await client.v1.transfers.create_async(params, {"idempotency_key": payout_id})
    again = await client.v1.transfers.create_async(params, {"idempotency_key": payout_id})
    listed = await client.v1.transfers.list_async({"transfer_group": payout_id})
    ours = await adapter.query_payout(payout_id)

    assert isinstance(made, stripe.Transfer)
    assert (made.id, made.amount, made.currency, made.destination) == (
        again.id,
        4_200,
        "eur",
        PAYEE,
    )
    assert made.transfer_group == payout_id and made.metadata["payout_id"] == payout_id
    assert [transfer.id for transfer in listed.data] == [made.id]
    assert (ours.outcome, ours.channel_ref) == (AttemptOutcome.SUCCEEDED, made.id)
    assert running.sim.payout_balance_minor == 5_800


async def test_stripe_sdk_reads_our_transfer_refusals(simulator_factory, stripe_client_factory):
    running = await simulator_factory(balance=100)
    client = stripe_client_factory(running.url)
    base: dict[str, Any] = {"currency": "usd", "destination": PAYEE}

    with pytest.raises(stripe.InvalidRequestError) as poor:
        await client.v1.transfers.create_async({**base, "amount": 101})
    with pytest.raises(stripe.InvalidRequestError) as nobody:
        await client.v1.transfers.create_async(
            {**base, "amount": 1, "destination": "acct_missing_9"}
        )
    await client.v1.transfers.create_async({**base, "amount": 1}, {"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError) as conflict:
        await client.v1.transfers.create_async({**base, "amount": 2}, {"idempotency_key": "k"})

    assert (poor.value.code, poor.value.http_status) == ("balance_insufficient", 400)
    assert (nobody.value.code, nobody.value.param) == ("resource_missing", "destination")
    assert json.loads(str(conflict.value.http_body))["error"]["type"] == "idempotency_error"
    assert running.sim.payout_balance_minor == 99
