"""A stream processor: one consumer group, batches in, records and changelogs out.

Each processor owns a consumer group over its input topics (co-partitioned: partition ``p`` of
every input goes to the same worker) and the state stores keyed the way its inputs are. A batch
is handled message by message; the stores' changes go to their changelogs once per batch; the
consumed offsets are committed only after every record produced up to them was acknowledged.
A crash therefore replays input but never loses output, and the handlers recognise replays
(offsets kept in their store entries, ids derived from their inputs).

Rebalances: before partitions are taken away the processor finishes its batch and commits;
when partitions arrive it restores their stores from the changelogs before reading them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from events.dead_letters import dead_letter_for_message
from events.records import AvroRecord
from events.topics import TopicSpec
from events.wire import DecodeError, EventCodec
from streams.engine.bundles import Bundling
from streams.engine.offsets import OffsetWatch
from streams.engine.outgoing import Outgoing
from streams.engine.output import OutputBuffer
from streams.engine.store import StateStore, restore

log = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord, AvroRecord], Awaitable[list[Outgoing]]]
Timer = Callable[[], list[Outgoing]]
COMMIT_INTERVAL = 1.0
MAX_BATCH = 1000


@dataclass(frozen=True)
class ProcessorSpec:
    """What a processor reads, keeps and does; the wiring of one stage of the pipeline."""

    name: str
    inputs: tuple[TopicSpec, ...]
    handle: Handler
    stores: tuple[StateStore, ...] = ()
    # Subjects read from the header and skipped without decoding the body.
    passed_over: frozenset[str] = frozenset()
    # Handler errors that mean "this message is wrong": it is dead-lettered, the stage goes on.
    refusals: tuple[type[Exception], ...] = ()
    on_assigned: Callable[[set[int]], None] | None = None
    timers: tuple[tuple[float, Timer], ...] = ()
    # Output record types sent as one bundle per destination partition and flush.
    bundles: tuple[Bundling, ...] = ()


@dataclass(frozen=True)
class Connection:
    """What every processor of a worker shares: the cluster, the codec, the producer."""

    bootstrap: str
    namespace: str
    codec: EventCodec
    producer: AIOKafkaProducer
    dead_letters: str
    session_timeout_ms: int = 10_000


@dataclass
class _Progress:
    """Consumed positions and the produce acknowledgements they wait for."""

    positions: dict[TopicPartition, int] = field(default_factory=dict)
    pending: list[asyncio.Future[Any]] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)


class StreamProcessor:
    """Runs one ``ProcessorSpec`` as a member of its consumer group."""

    def __init__(self, spec: ProcessorSpec, connection: Connection) -> None:
        self.spec = spec
        self.connection = connection
        self.group_id = f"{connection.namespace}.{spec.name}"
        self._lock = asyncio.Lock()
        self._progress = _Progress()
        self._held: set[int] = set()
        self._failed_output = False
        self._watch = OffsetWatch(spec.name)
        self._output = OutputBuffer(connection.producer, connection.codec.encode, spec.bundles)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=connection.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=connection.session_timeout_ms,
            heartbeat_interval_ms=max(connection.session_timeout_ms // 5, 500),
            partition_assignment_strategy=(RangePartitionAssignor,),
        )

    async def run(self) -> None:
        """Consume until cancelled; a clean stop commits what was processed. A failure of the
        loop, the committer or a timer stops the processor with that error."""
        names = [spec.name for spec in self.spec.inputs]
        self._consumer.subscribe(names, listener=_Rebalance(self))
        await self._consumer.start()
        tasks = [
            asyncio.create_task(self._consume()),
            asyncio.create_task(self._commit_every(COMMIT_INTERVAL)),
            *(asyncio.create_task(self._every(s, t)) for s, t in self.spec.timers),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._stop()

    async def _consume(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if batch:
                async with self._lock:
                    await self._process(batch)

    async def _stop(self) -> None:
        try:
            await asyncio.shield(self._commit())
        finally:
            await self._consumer.stop()

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # Positions move only once the batch's changelog writes are handed to the producer, so
        # a commit never covers a message whose state change was not sent.
        reached: dict[TopicPartition, int] = {}
        for tp, messages in batch.items():
            self._bind(tp.partition)
            for message in messages:
                self._watch.check(message)
                await self._handle(message)
                reached[tp] = message.offset + 1
        self._bind(None)
        await self._send_changes()
        await self._flush()
        self._progress.positions.update(reached)

    def _bind(self, partition: int | None) -> None:
        for store in self.spec.stores:
            store.bind(partition)

    async def _handle(self, message: ConsumerRecord) -> None:
        codec = self.connection.codec
        refused: tuple[type[Exception], ...] = (DecodeError, *self.spec.refusals)
        try:
            if self.spec.passed_over and codec.subject_of(message.value) in self.spec.passed_over:
                return
            outgoing = await self.spec.handle(message, codec.decode(message.value))
        except refused as error:
            letter = dead_letter_for_message(self.spec.name, message, error)
            await self._send(self.connection.dead_letters, message.key, codec.encode(letter))
            return
        await self.send(outgoing)

    async def send(self, outgoing: Sequence[Outgoing]) -> None:
        """Queue ``outgoing`` for the next flush; the commit after it waits for their acks."""
        for out in outgoing:
            if out.encoded is None:
                await self._output.add_record(out.topic, out.key, out.record)
            else:
                await self._output.add(out.topic, out.key, out.encoded)

    async def _send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        await self._output.add(topic, key, value, partition)

    async def _flush(self) -> None:
        self._progress.pending += await self._output.flush()

    async def _send_changes(self) -> None:
        for store in self.spec.stores:
            for change in store.take_changes():
                await self._send(store.changelog.name, change.key, change.value, change.partition)

    async def _commit_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._commit()

    async def _commit(self) -> None:
        """Wait for what was produced, then commit the positions it covers."""
        if self._failed_output:
            return  # never commit past an output the broker refused: the input is replayed
        async with self._lock:
            positions = dict(self._progress.positions)
            pending, self._progress.pending = self._progress.pending, []
        try:
            await asyncio.gather(*pending)
        except Exception:
            self._failed_output = True
            raise
        if positions == self._progress.committed:
            return
        try:
            await self._consumer.commit(positions)
        except KafkaError as error:
            # A rebalance is under way: the new owner replays from the last commit and the
            # handlers recognise the replay, so nothing is lost or counted twice.
            log.warning("%s: commit refused (%s); it will be replayed", self.spec.name, error)
            return
        self._progress.committed = positions

    async def _every(self, seconds: float, timer: Timer) -> None:
        while True:
            await asyncio.sleep(seconds)
            if not self._held:
                continue
            async with self._lock:
                await self.send(timer())
                await self._flush()

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions are about to leave: commit everything processed so far."""
        await self._commit()
        for tp in partitions:
            self._progress.positions.pop(tp, None)
            self._progress.committed.pop(tp, None)
        self._watch.forget()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions arrived: restore their state before their first message is read."""
        numbers = {tp.partition for tp in partitions}
        async with self._lock:
            began, gone, new = time.monotonic(), self._held - numbers, numbers - self._held
            restored = 0
            for store in self.spec.stores:
                store.drop(gone)
                restored += await restore(self.connection.bootstrap, store, new)
            self._held = numbers
            if self.spec.on_assigned is not None:
                self.spec.on_assigned(numbers)
        log.info(
            "%s: partitions %s, %d changelog records restored in %.2f s",
            self.spec.name,
            sorted(numbers),
            restored,
            time.monotonic() - began,
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands the consumer's rebalance callbacks to the processor."""

    def __init__(self, processor: StreamProcessor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._processor.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._processor.assigned(set(assigned))
