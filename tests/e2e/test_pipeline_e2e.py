"""One thousand orders through PaymentsClient, the intake worker and the projection, with a
worker and a projector SIGKILLed mid-stream: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.orm import Session

from events.client import PaymentsClient
from events.records import PaymentAccepted, PaymentRejected, RequestPayment
from events.schema_store import ManifestSchemas
from events.wire import EventCodec
from paystream.demo.orders import OrderBatch, realistic_batch
from paystream.demo.tally import LogFollower, end_offsets
from projections.database import open_database
from projections.models import PaymentStatus

pytestmark = pytest.mark.e2e

CHUNK = 50


async def publish_paced(
    client: PaymentsClient, commands: list[RequestPayment], pause: float = 0.05
) -> None:
    """Publish like live traffic: small chunks with pauses, so kills land mid-stream."""
    for start in range(0, len(commands), CHUNK):
        await client.publish_many(commands[start : start + CHUNK])
        await asyncio.sleep(pause)


async def publish_poison(bootstrap: str, topic: str, poison: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for message in poison:
            await producer.send_and_wait(topic, message, key=b"poison")
    finally:
        await producer.stop()


def read_model(database_url: str) -> list[PaymentStatus]:
    engine = open_database(database_url)
    with Session(engine) as session:
        rows = list(session.scalars(select(PaymentStatus)))
    engine.dispose()
    return rows


async def wait_for_rows(database_url: str, count: int, timeout: float) -> list[PaymentStatus]:
    deadline = time.monotonic() + timeout
    rows = read_model(database_url)
    while len(rows) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rows = read_model(database_url)
    return rows


async def drive_with_kills(stack, batch: OrderBatch) -> tuple[LogFollower, int]:
    """Publish like live traffic while worker and projector run; SIGKILL each of them while
    commands are still flowing, restart it, and follow the log until everything is decided."""
    env, catalogue = stack.environment, stack.catalogue
    codec = EventCodec(ManifestSchemas())
    start = await end_offsets(env.bootstrap, [catalogue.events.name, catalogue.dead_letters.name])
    total = len(batch.commands) + len(batch.poison)
    stack.start("worker")
    stack.start("project")
    async with (
        PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
        LogFollower(env.bootstrap, codec, start) as follower,
    ):
        await publish_poison(env.bootstrap, catalogue.commands.name, batch.poison[:1])
        warm_up, rest = batch.commands[:100], batch.commands[100:]
        await client.publish_many(warm_up)
        assert await follower.until(len(warm_up), timeout=90), stack.logs()  # the worker is up
        publishing = asyncio.create_task(publish_paced(client, rest, pause=0.15))
        assert await follower.until(len(batch.commands) // 4, timeout=90), stack.logs()
        stack.processes["worker"].kill()
        processed_at_kill = follower.tally.processed
        assert not publishing.done(), "the worker must die while commands are still arriving"
        await asyncio.sleep(1.0)
        stack.start("worker")
        assert await follower.until(processed_at_kill + 150, timeout=90), stack.logs()
        stack.processes["project"].kill()
        stack.start("project")
        await publishing
        await publish_poison(env.bootstrap, catalogue.commands.name, batch.poison[1:])
        assert await follower.until(total, timeout=120), stack.logs()
        await follower.poll(timeout_ms=1000)  # anything extra (it must not exist) shows up
    return follower, processed_at_kill


async def test_thousand_orders_survive_sigkill_exactly_once(stack_factory):
    stack = stack_factory()
    batch = realistic_batch(1000, seed=11, invalid_share=0.08, repeat_share=0.06)
    assert batch.invalid > 40 and batch.repeats == 60 and batch.conflicting_repeats == 6

    follower, processed_at_kill = await drive_with_kills(stack, batch)
    tally = follower.tally
    total = len(batch.commands) + len(batch.poison)
    assert 0 < processed_at_kill < total, "the worker must be killed mid-stream"

    # The log: one decision per payment, exactly as expected; repeats suppressed; poison kept.
    assert set(tally.decisions) == set(batch.expected)
    for payment_id, expected in batch.expected.items():
        decision = tally.decisions[payment_id]
        assert isinstance(decision, PaymentAccepted) == expected.accepted, payment_id
        assert (decision.amount_minor, decision.currency) == (
            expected.amount_minor,
            expected.currency,
        )
        if isinstance(decision, PaymentRejected):
            assert decision.reason == expected.reason, decision.detail
    decision_ids = defaultdict(set)
    for decision in tally.decisions.values():
        decision_ids[decision.payment_id].add(decision.event_id)
    assert all(len(ids) == 1 for ids in decision_ids.values())
    assert len(tally.deduplicated) == batch.repeats
    conflicts = [event for event in tally.deduplicated.values() if not event.request_matches]
    assert len(conflicts) == batch.conflicting_repeats
    assert sorted(letter.payload for letter in tally.dead_letters.values()) == sorted(batch.poison)
    assert all(letter.reason and letter.error_type for letter in tally.dead_letters.values())
    assert tally.undecodable_events == 0

    # The read model: every payment exactly once, with the right amount, currency and outcome.
    rows = await wait_for_rows(stack.environment.database_url, len(batch.expected), timeout=60)
    assert len(rows) == len(batch.expected), stack.logs()
    by_id = {row.payment_id: row for row in rows}
    assert set(by_id) == set(batch.expected)
    for payment_id, expected in batch.expected.items():
        row = by_id[payment_id]
        assert (row.amount_minor, row.currency) == (expected.amount_minor, expected.currency)
        assert row.status == ("ACCEPTED" if expected.accepted else "REJECTED")
        assert row.reason == (None if expected.accepted else str(expected.reason))
