"""A stream processor: one consumer group, batches in, records and changelogs out.

Each processor owns a consumer group over its input topics (co-partitioned: partition ``p`` of
every input goes to the same worker) and the state stores keyed the way its inputs are. A batch
is handled message by message, the most urgent input topics first (work that finishes a payment
before work that starts one), each urgency's outputs sent as it ends; the stores' changes go to
their changelogs once per batch; the consumed offsets are committed only after every record
produced up to them was acknowledged. A crash therefore replays input but never loses output,
and the handlers recognise replays (offsets kept in their store entries, ids derived from their
inputs).

A processor runs in its worker's one thread: ``poll`` handles what arrived, runs the timers
that are due and commits when it is time. Rebalance callbacks come from inside ``poll``, between
batches: before partitions are taken away the processor commits; when partitions arrive it
restores their stores from the changelogs before reading them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from events.dead_letters import dead_letter_for_message
from events.records import AvroRecord
from events.topics import TopicSpec
from events.wire import DecodeError, EventCodec
from streams.engine.bundles import Bundling
from streams.engine.kafka import Delivered, ProducerLink, group_consumer
from streams.engine.offsets import OffsetWatch
from streams.engine.outgoing import Outgoing
from streams.engine.output import OutputBuffer
from streams.engine.store import StateStore, restore

log = logging.getLogger(__name__)


class Topical(Protocol):
    """Anything that names the topic it came from, as a consumed message does."""

    def topic(self) -> str | None:
        """The topic's name (None when the client reports an error without one)."""
        ...


M = TypeVar("M", bound=Topical)
Handler = Callable[[Delivered, AvroRecord], list[Outgoing]]
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
    # Input topics by urgency, lowest first; unlisted topics come after every listed one. A
    # batch is handled one urgency at a time, each one's outputs sent before the next begins.
    urgency: dict[str, int] = field(default_factory=dict)


def combined(name: str, stages: Sequence[ProcessorSpec]) -> ProcessorSpec:
    """Several stages run as one processor: one consumer group over all of their inputs.

    A worker then fetches, flushes and commits once per batch for every stage. Each message
    goes to the stage that reads its topic; partition ``p`` of every input is still assigned
    together, so each stage's inputs stay co-partitioned. Raises ValueError when two stages
    read the same topic or one passes over a record type another stage reads.
    """
    stage_of = {topic.name: stage for stage in stages for topic in stage.inputs}
    if len(stage_of) != sum(len(stage.inputs) for stage in stages):
        raise ValueError(f"stages of {name} share an input topic")
    passed_over = frozenset().union(*(stage.passed_over for stage in stages))
    for stage in stages:
        read = {cls.subject for topic in stage.inputs for cls in topic.records}
        if read & (passed_over - stage.passed_over):
            raise ValueError(f"{stage.name} reads records another stage of {name} passes over")

    def handle(message: Delivered, record: AvroRecord) -> list[Outgoing]:
        return stage_of[message.topic].handle(message, record)

    def assigned(partitions: set[int]) -> None:
        for stage in stages:
            if stage.on_assigned is not None:
                stage.on_assigned(partitions)

    return ProcessorSpec(
        name,
        tuple(topic for stage in stages for topic in stage.inputs),
        handle,
        stores=tuple(store for stage in stages for store in stage.stores),
        passed_over=passed_over,
        refusals=tuple(refusal for stage in stages for refusal in stage.refusals),
        on_assigned=assigned,
        timers=tuple(timer for stage in stages for timer in stage.timers),
        bundles=tuple(bundling for stage in stages for bundling in stage.bundles),
        urgency={topic: rank for stage in stages for topic, rank in stage.urgency.items()},
    )


@dataclass(frozen=True)
class Connection:
    """What every processor of a worker shares: the cluster, the codec, the producer."""

    bootstrap: str
    namespace: str
    codec: EventCodec
    producer: ProducerLink
    dead_letters: str
    session_timeout_ms: int = 10_000


class StreamProcessor:
    """Runs one ``ProcessorSpec`` as a member of its consumer group."""

    def __init__(self, spec: ProcessorSpec, connection: Connection) -> None:
        self.spec = spec
        self.connection = connection
        self.group_id = f"{connection.namespace}.{spec.name}"
        self._positions: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        # What each batch reached, with the producer mark its outputs closed, and the
        # positions whose outputs are all acknowledged (every such batch's reach applied).
        self._marked: deque[tuple[int, dict[tuple[str, int], int]]] = deque()
        self._acknowledged: dict[tuple[str, int], int] = {}
        self._held: set[int] = set()
        self._watch = OffsetWatch(spec.name)
        self._output = OutputBuffer(connection.producer, connection.codec.encode, spec.bundles)
        self._next_commit = time.monotonic() + COMMIT_INTERVAL
        self._due = [time.monotonic() + seconds for seconds, _ in spec.timers]
        self._consumer: Consumer = group_consumer(
            connection.bootstrap,
            self.group_id,
            connection.session_timeout_ms,
            self._commit_answered,
        )

    def start(self) -> None:
        """Join the group; partitions arrive (and their stores are restored) inside ``poll``."""
        names = [spec.name for spec in self.spec.inputs]
        self._consumer.subscribe(names, on_assign=self._assigned, on_revoke=self._revoked)

    def poll(self, timeout: float) -> int:
        """Handle what arrives within ``timeout`` seconds (a batch at most), run the timers that
        are due and commit when it is time; returns the number of messages handled."""
        first = self._consumer.poll(timeout)
        batch = [] if first is None else [first, *self._consumer.consume(MAX_BATCH - 1, 0)]
        if batch:
            self._process(batch)
        self._run_timers()
        if time.monotonic() >= self._next_commit:
            self.commit(wait=False)
        self.connection.producer.serve()
        return len(batch)

    def stop(self) -> None:
        """Commit what was processed and leave the group."""
        try:
            self.commit()
        finally:
            self._consumer.close()

    def _process(self, batch: list[Message]) -> None:
        # Positions move only once the batch's changelog writes are handed to the producer, so
        # a commit never covers a message whose state change was not sent.
        reached: dict[tuple[str, int], int] = {}
        groups = by_urgency(batch, self.spec.urgency)
        for number, messages in enumerate(groups, start=1):
            self._handle_all(messages, reached)
            # Work that finishes a payment leaves now, not after the new work behind it. The
            # last group's outputs leave with the batch's changelog records instead: new work
            # (a case opened, its requests sent) should not reach the broker well ahead of the
            # state change that remembers it.
            if number < len(groups):
                self._output.flush()
        self._send_changes()
        self._output.flush()
        self._positions.update(reached)
        self._marked.append((self.connection.producer.mark(), reached))

    def _handle_all(self, messages: list[Message], reached: dict[tuple[str, int], int]) -> None:
        bound: int | None = None
        for raw in messages:
            if _failed(raw):
                continue
            message = Delivered.of(raw)
            if message.partition != bound:
                self._bind(bound := message.partition)
            self._watch.check(message)
            self._handle(message)
            reached[message.topic, message.partition] = message.offset + 1
        self._bind(None)

    def _bind(self, partition: int | None) -> None:
        for store in self.spec.stores:
            store.bind(partition)

    def _handle(self, message: Delivered) -> None:
        codec = self.connection.codec
        refused: tuple[type[Exception], ...] = (DecodeError, *self.spec.refusals)
        try:
            if self.spec.passed_over and codec.subject_of(message.value) in self.spec.passed_over:
                return
            outgoing = self.spec.handle(message, codec.decode(message.value))
        except refused as error:
            letter = dead_letter_for_message(self.spec.name, message, error)
            self._output.add(self.connection.dead_letters, message.key, codec.encode(letter))
            return
        self.send(outgoing)

    def send(self, outgoing: Sequence[Outgoing]) -> None:
        """Queue ``outgoing`` for the next flush; no commit covers them until they are acked."""
        for out in outgoing:
            if out.encoded is None:
                self._output.add_record(out.topic, out.key, out.record)
            else:
                self._output.add(out.topic, out.key, out.encoded)

    def _send_changes(self) -> None:
        for store in self.spec.stores:
            for change in store.take_changes():
                self._output.add(store.changelog.name, change.key, change.value, change.partition)

    def _run_timers(self) -> None:
        now = time.monotonic()
        for number, (seconds, timer) in enumerate(self.spec.timers):
            if now < self._due[number]:
                continue
            self._due[number] = now + seconds
            if self._held:
                self.send(timer())
                self._output.flush()

    def commit(self, wait: bool = True) -> None:
        """Commit the positions whose outputs are all acknowledged.

        With ``wait`` (partitions leaving, the processor stopping) it waits for every output
        and for the commit's answer. Without it (the loop's periodic commit) it waits for
        neither: it commits the positions of the newest batch whose outputs are acknowledged
        already, and a refused commit is sent again with the next. A record the broker refused
        stops the processor with DeliveryFailed before anything past it is committed: the
        input is replayed by whoever takes the partitions next.
        """
        self._next_commit = time.monotonic() + COMMIT_INTERVAL
        if wait:
            self.connection.producer.settle()
            self._marked.clear()
            self._acknowledged = dict(self._positions)
        positions = self._acknowledged_positions()
        if positions == self._committed:
            return
        offsets = [TopicPartition(topic, p, offset) for (topic, p), offset in positions.items()]
        try:
            # Two calls, not one with ``asynchronous=not wait``: the client types each form.
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            # A rebalance is under way: the new owner replays from the last commit and the
            # handlers recognise the replay, so nothing is lost or counted twice.
            log.warning("%s: commit refused (%s); it will be replayed", self.spec.name, error)
            return
        self._committed = dict(positions)

    def _acknowledged_positions(self) -> dict[tuple[str, int], int]:
        """The positions reached by every batch whose outputs are all acknowledged."""
        producer = self.connection.producer
        while self._marked and producer.acknowledged(self._marked[0][0]):
            self._acknowledged.update(self._marked.popleft()[1])
        return self._acknowledged

    def _commit_answered(self, error: KafkaError | None, _offsets: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            # An unwaited commit was refused: the next one sends every position again.
            log.warning("%s: commit refused (%s); sent again next time", self.spec.name, error)
            self._committed = {}

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions are about to leave: commit everything processed so far."""
        self.commit()
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)
            self._acknowledged.pop((tp.topic, tp.partition), None)
        self._watch.forget()

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions arrived: restore their state before their first message is read."""
        numbers = {tp.partition for tp in partitions}
        began, gone, new = time.monotonic(), self._held - numbers, numbers - self._held
        restored = 0
        for store in self.spec.stores:
            store.drop(gone)
            restored += restore(self.connection.bootstrap, store, new)
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


def by_urgency(batch: Sequence[M], urgency: dict[str, int]) -> list[list[M]]:
    """``batch`` in groups of equal urgency, most urgent first, unlisted topics last. Each
    group keeps the batch's order, and all messages of a topic fall in one group: every
    partition's order is kept."""
    if not urgency:
        return [list(batch)]
    least = max(urgency.values()) + 1
    groups: dict[int, list[M]] = {}
    for message in batch:
        groups.setdefault(urgency.get(message.topic() or "", least), []).append(message)
    return [groups[rank] for rank in sorted(groups)]


def _failed(message: Message) -> bool:
    """True for an error report in place of a record: fatal ones stop the processor."""
    error = message.error()
    if error is None:
        return False
    if error.fatal():
        raise KafkaException(error)
    log.warning("consumer reports %s", error)
    return True
