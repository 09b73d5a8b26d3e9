"""Reading a topic's history once, from a point in time to its end as of the call.

For audits and tools (backtests, the rule-set publisher): no consumer group, no commits, so
nothing they read changes any live position.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.records import AvroRecord
from events.topics import TopicSpec
from events.wire import DecodeError, EventCodec


async def _start_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None
) -> dict[TopicPartition, int]:
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    if since is None:
        return starts
    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in starts})
    ends = await consumer.end_offsets(partitions)
    return {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in partitions}


async def read_history(
    bootstrap: str, spec: TopicSpec, codec: EventCodec, since: datetime | None = None
) -> AsyncIterator[AvroRecord]:
    """Every decodable record of ``spec`` written at or after ``since``, up to the end now.

    Undecodable records are skipped: the processors have dead-lettered them already.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0.05)  # aiokafka's stop() raises if its task never ran
    try:
        partitions = [TopicPartition(spec.name, number) for number in range(spec.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, offset in (await _start_offsets(consumer, partitions, since)).items():
            consumer.seek(tp, offset)
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        try:
                            yield codec.decode(message.value)
                        except DecodeError:
                            continue
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


async def published_versions(bootstrap: str, spec: TopicSpec, codec: EventCodec) -> list[int]:
    """The versions published on a topic of versioned documents (rule sets, routing policies)."""
    return [
        int(getattr(record, "version"))  # noqa: B009 (every record of these topics has one)
        async for record in read_history(bootstrap, spec, codec)
        if isinstance(record, spec.records)
    ]
