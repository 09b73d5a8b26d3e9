"""Feeding a projection from the log, exactly once into the database.

Each batch of records and the next offsets of their partitions are written in one database
transaction. The database, not Kafka, holds the position: after a crash the projector resumes
where its last transaction ended, so no record is skipped and none is applied twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from events.dead_letters import dead_letter_for_message
from events.records import AvroRecord
from events.wire import DecodeError, EventCodec
from projections.models import ProjectionOffset

log = logging.getLogger(__name__)


class Projection(Protocol):
    """A read model: a name (its offsets are kept under it) and how one record changes it."""

    name: str

    def apply(self, session: Session, record: AvroRecord) -> None:
        """Change the read model for ``record``, inside the caller's transaction."""
        ...


class CombinedProjection:
    """Several read models fed by one projector, under one name and one set of offsets."""

    def __init__(self, name: str, parts: list[Projection]) -> None:
        self.name = name
        self._parts = parts

    def apply(self, session: Session, record: AvroRecord) -> None:
        """Apply ``record`` to every part, in the caller's transaction."""
        for part in self._parts:
            part.apply(session, record)


@dataclass(frozen=True)
class DecodedRecord:
    """A consumed record at its offset; ``record`` is None when it was dead-lettered."""

    offset: int
    record: AvroRecord | None


def stored_offsets(engine: Engine, projection: str, topic: str) -> dict[int, int]:
    """partition -> next offset to read, as last committed with the projection's rows."""
    with Session(engine) as session:
        rows = session.query(ProjectionOffset).filter_by(projection=projection, topic=topic)
        return {row.partition: row.next_offset for row in rows}


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Nothing to flush: every batch is already committed whole or not at all."""

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Start each partition where the database says this projection stopped."""
        await self._projector.seek_to_stored(list(assigned))


class Projector:
    """Runs one projection over one topic, in batches, each batch one transaction."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        dead_letter_topic: str,
        projection: Projection,
        engine: Engine,
        codec: EventCodec,
        group_id: str,
        batch_size: int = 1000,
    ) -> None:
        self._topic = topic
        self._dead_letter_topic = dead_letter_topic
        self._projection = projection
        self._engine = engine
        self._codec = codec
        self._batch_size = batch_size
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    def _connect(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        # aiokafka clients bind to the running loop, so they are made inside run().
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True
        )
        return self._consumer, self._producer

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Position ``partitions`` at their stored offsets (the beginning when none)."""
        consumer = self._consumer
        assert consumer is not None, "called by the rebalance listener inside run()"
        stored = stored_offsets(self._engine, self._projection.name, self._topic)
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)

    async def run(self, stop: asyncio.Event) -> None:
        """Project until ``stop`` is set."""
        consumer, producer = self._connect()
        await producer.start()
        await consumer.start()
        try:
            consumer.subscribe([self._topic], listener=_SeekToStoredOffsets(self))
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                if batch:
                    await self._process(consumer, batch)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _process(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]
    ) -> None:
        decoded = {
            tp: [await self._decode(message) for message in messages]
            for tp, messages in batch.items()
        }
        await asyncio.to_thread(self._write, decoded)
        commits = {tp: records[-1].offset + 1 for tp, records in decoded.items()}
        try:
            # Only for lag monitoring: the database holds the real position.
            await consumer.commit(commits)
        except Exception as error:  # a rebalance in flight; the next batch commits again
            log.debug("offset commit for monitoring failed: %r", error)

    async def _decode(self, message: Any) -> DecodedRecord:
        try:
            return DecodedRecord(message.offset, self._codec.decode(message.value))
        except DecodeError as error:
            processor = f"projection:{self._projection.name}"
            letter = dead_letter_for_message(processor, message, error)
            assert self._producer is not None, "decoding happens inside run()"
            await self._producer.send_and_wait(
                self._dead_letter_topic, self._codec.encode(letter), key=message.key
            )
            return DecodedRecord(message.offset, None)

    def _write(self, decoded: dict[TopicPartition, list[DecodedRecord]]) -> None:
        with Session(self._engine) as session, session.begin():
            for tp, records in decoded.items():
                self._write_partition(session, tp, records)

    def _write_partition(
        self, session: Session, tp: TopicPartition, records: list[DecodedRecord]
    ) -> None:
        key = (self._projection.name, tp.topic, tp.partition)
        position = session.get(ProjectionOffset, key, with_for_update=True)
        start = position.next_offset if position else 0
        for item in records:
            # Below the stored position means another instance applied it before a rebalance.
            if item.offset >= start and item.record is not None:
                self._projection.apply(session, item.record)
        next_offset = records[-1].offset + 1
        if position is None:
            session.add(
                ProjectionOffset(
                    projection=key[0], topic=key[1], partition=key[2], next_offset=next_offset
                )
            )
        elif next_offset > position.next_offset:
            position.next_offset = next_offset
