"""The intake worker commits what it processed, also when commands arrive while it starts.

Without the correction in ``paystream.streams.faust_patches`` this fails: Faust's start-up
race leaves the committed offset of some partitions crawling one record per commit interval,
and every restart replays the rest.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer

from paystream.demo.orders import realistic_batch
from paystream.demo.tally import LogFollower, end_offsets, topic_partitions
from paystream.events.client import PaymentsClient
from paystream.events.schema_store import ManifestSchemas
from paystream.events.wire import EventCodec

pytestmark = pytest.mark.e2e


async def commit_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """partition -> records not yet committed by ``group``."""
    partitions = await topic_partitions(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    await asyncio.sleep(0.05)
    try:
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: ends[tp] - (await consumer.committed(tp) or 0) for tp in partitions}
    finally:
        await consumer.stop()


async def test_restarted_worker_commits_commands_that_arrived_while_it_started(stack_factory):
    stack = stack_factory()
    env, catalogue = stack.environment, stack.catalogue
    group = f"{env.namespace}.streams"
    first = realistic_batch(300, seed=41, repeat_share=0)
    second = realistic_batch(700, seed=42, repeat_share=0)
    codec = EventCodec(ManifestSchemas())
    start = await end_offsets(env.bootstrap, [catalogue.events.name])

    async with (
        PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
        LogFollower(env.bootstrap, codec, start) as follower,
    ):
        worker = stack.start("worker")
        await client.publish_many(first.commands)
        assert await follower.until(len(first.commands), timeout=90), stack.logs()
        worker.stop()
        stack.start("worker")  # a restart while traffic keeps coming, as in a rolling deploy
        for chunk in range(0, len(second.commands), 50):
            await client.publish_many(second.commands[chunk : chunk + 50])
            await asyncio.sleep(0.05)
        total = len(first.commands) + len(second.commands)
        assert await follower.until(total, timeout=90), stack.logs()

    deadline = time.monotonic() + 20
    lag = await commit_lag(env.bootstrap, group, catalogue.commands.name)
    while any(lag.values()) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        lag = await commit_lag(env.bootstrap, group, catalogue.commands.name)
    assert not any(lag.values()), f"records processed but never committed, by partition: {lag}"
