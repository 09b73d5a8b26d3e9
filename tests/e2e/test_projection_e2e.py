"""The payment-status projection on its own: the log is fed directly, so what the projector
does with redelivered copies, undecodable records and restarts is visible."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.orm import Session

from events.records import PaymentAccepted, PaymentRejected
from events.schema_store import ManifestSchemas
from events.wire import EventCodec
from paystream.demo.orders import realistic_batch
from paystream.demo.tally import LogFollower, end_offsets
from projections.database import open_database
from projections.models import PaymentStatus, ProjectionOffset
from streams.validation import ValidationPolicy, decide

pytestmark = pytest.mark.e2e
CODEC = EventCodec(ManifestSchemas())


def decisions(count: int, seed: int) -> list[PaymentAccepted | PaymentRejected]:
    batch = realistic_batch(count, seed=seed, invalid_share=0.1, repeat_share=0)
    policy = ValidationPolicy(10_000_000)
    return [decide(command, policy, command.issued_at) for command in batch.commands]


async def publish(bootstrap: str, topic: str, records: list, raw: list[bytes] = ()) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send(topic, CODEC.encode(record), key=record.payment_id.encode())
        for message in raw:
            await producer.send(topic, message, key=b"garbage")
        await producer.flush()
    finally:
        await producer.stop()


def snapshot(database_url: str) -> tuple[dict[str, tuple], dict[int, int]]:
    engine = open_database(database_url)
    with Session(engine) as session:
        rows = {
            row.payment_id: (row.status, row.amount_minor, row.currency, row.last_event_id)
            for row in session.scalars(select(PaymentStatus))
        }
        offsets = {
            row.partition: row.next_offset for row in session.scalars(select(ProjectionOffset))
        }
    engine.dispose()
    return rows, offsets


async def wait_for(database_url: str, rows: int, offsets: dict[int, int], timeout: float = 60):
    deadline = time.monotonic() + timeout
    state = snapshot(database_url)
    while (len(state[0]) < rows or state[1] != offsets) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        state = snapshot(database_url)
    return state


async def test_projection_is_exactly_once_across_restarts_and_dead_letters_garbage(stack_factory):
    stack = stack_factory()
    env, catalogue = stack.environment, stack.catalogue
    events_topic = catalogue.events.name
    start = await end_offsets(env.bootstrap, [catalogue.dead_letters.name])
    first, second = decisions(300, seed=31), decisions(200, seed=32)

    await publish(env.bootstrap, events_topic, first, raw=[b"\x00\x00\x00\x00\x02\xff"])
    projector = stack.start("project")
    logged = {
        tp.partition: n for tp, n in (await end_offsets(env.bootstrap, [events_topic])).items()
    }
    rows, offsets = await wait_for(env.database_url, len(first), logged)
    assert offsets == logged, stack.logs()
    assert len(rows) == len(first)
    projector.stop()

    # While it is down: new events, plus redelivered copies of old ones (as a worker that
    # crashed before committing would write them), which must change nothing.
    await publish(env.bootstrap, events_topic, second + first[:50])
    stack.start("project")
    logged = {
        tp.partition: n for tp, n in (await end_offsets(env.bootstrap, [events_topic])).items()
    }
    rows, offsets = await wait_for(env.database_url, len(first) + len(second), logged)
    assert offsets == logged, stack.logs()
    assert len(rows) == len(first) + len(second)
    for event in first + second:
        status = "ACCEPTED" if isinstance(event, PaymentAccepted) else "REJECTED"
        assert rows[event.payment_id] == (
            status,
            event.amount_minor,
            event.currency,
            event.event_id,
        )

    async with LogFollower(env.bootstrap, CODEC, start) as follower:
        assert await follower.until(1, timeout=30), "the garbage record was not dead-lettered"
        await follower.poll(timeout_ms=500)  # a second dead letter (there must be none) shows
    (letter,) = follower.tally.dead_letters.values()
    assert letter.processor == "projection:payment-status"
    assert letter.source_topic == events_topic
    assert letter.payload == b"\x00\x00\x00\x00\x02\xff"
    assert letter.error_type == "AvroBodyError"
