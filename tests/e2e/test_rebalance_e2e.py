"""Two intake workers share the commands; one is SIGKILLed. The survivor takes over its
partitions, recovers their idempotency keys from the changelog, and still suppresses repeats."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from events.client import PaymentsClient
from events.schema_store import ManifestSchemas
from events.wire import EventCodec
from paystream.demo.orders import realistic_batch
from paystream.demo.tally import LogFollower, end_offsets

pytestmark = pytest.mark.e2e


async def test_survivor_recovers_idempotency_keys_after_a_worker_dies(stack_factory):
    stack = stack_factory()
    env = stack.environment
    first = realistic_batch(400, seed=21, invalid_share=0.05, repeat_share=0)
    later = realistic_batch(200, seed=22, invalid_share=0.05, repeat_share=0)
    retries = [dataclasses.replace(c, command_id=str(uuid.uuid4())) for c in first.commands]
    codec = EventCodec(ManifestSchemas())
    start = await end_offsets(env.bootstrap, [stack.catalogue.events.name])

    first_worker = stack.start("worker")
    async with (
        PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
        LogFollower(env.bootstrap, codec, start) as follower,
    ):
        await client.publish_many(first.commands)
        assert await follower.until(len(first.commands), timeout=90), stack.logs()
        # Every key so far was recorded by the first worker. The second one joins (a rebalance
        # hands it some partitions), then the first dies (the rest move over after the session
        # timeout): each handover must restore the keys from the changelog.
        survivor = stack.start("worker", name="worker-2")
        await asyncio.sleep(8)
        first_worker.kill()
        await client.publish_many(retries + later.commands)
        total = len(first.commands) + len(retries) + len(later.commands)
        assert await follower.until(total, timeout=120), stack.logs()
        await follower.poll(timeout_ms=1000)

    assert survivor.running
    tally = follower.tally
    assert set(tally.decisions) == set(first.expected) | set(later.expected)
    assert len(tally.deduplicated) == len(retries)
    assert all(event.request_matches for event in tally.deduplicated.values())
    retry_ids = {c.command_id for c in retries}
    redecided = [p for p, ids in tally.deciding_commands.items() if ids & retry_ids]
    assert redecided == [], "a retry was decided again: its key was lost in the handover"
