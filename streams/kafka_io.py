"""How processors meet Kafka inside the Faust app: raw topics, direct produce, offset watch."""

from __future__ import annotations

import logging
from typing import Any

import faust

from events.dead_letters import ConsumedMessage
from events.topics import TopicSpec

log = logging.getLogger(__name__)


def raw_topic(app: faust.App, *specs: TopicSpec) -> Any:
    """A Faust topic over ``specs`` that passes key and value bytes through untouched."""
    return app.topic(
        *(spec.name for spec in specs),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=specs[0].partitions,
        retention=None,
    )


async def produce(app: faust.App, topic: str, key: bytes | None, value: bytes) -> None:
    """Hand a record to the app's Kafka producer without waiting for the broker's ack.

    Faust flushes this producer before it commits the consumed offsets, so a crash before the
    ack replays the input instead of losing the output. Going straight to the producer skips
    Faust's per-message send buffer, which drains one message per loop iteration.
    """
    await app.producer.send(topic, key, value, partition=None, timestamp=None, headers=None)


class OffsetWatch:
    """Raises the alarm when a partition's delivered offsets jump: a message went unprocessed.

    Our producers are not transactional and our topics are not compacted, so consecutive
    messages of a partition have consecutive offsets; a jump means the consumer skipped one.
    """

    def __init__(self, processor: str) -> None:
        self._processor = processor
        self._next: dict[tuple[str, int], int] = {}

    def check(self, message: ConsumedMessage) -> None:
        """Note ``message``; log an error when offsets were skipped before it."""
        where = (message.topic, message.partition)
        expected = self._next.get(where)
        if expected is not None and message.offset > expected:
            log.error(
                "%s skipped offsets %d-%d of %s[%d]",
                self._processor,
                expected,
                message.offset - 1,
                message.topic,
                message.partition,
            )
        self._next[where] = message.offset + 1

    def forget(self) -> None:
        """Start afresh after a rebalance: another worker may have moved a partition on."""
        self._next.clear()


def offset_watch(app: faust.App, processor: str) -> OffsetWatch:
    """An OffsetWatch for ``processor`` that forgets whenever the app's partitions are revoked."""
    watch = OffsetWatch(processor)

    async def forget(_sender: Any, /, *_args: Any, signal: Any, **_kwargs: Any) -> None:
        watch.forget()

    app.on_partitions_revoked.connect(forget)
    return watch
