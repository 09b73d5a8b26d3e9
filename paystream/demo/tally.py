"""Reading back what the pipeline decided: the events log and dead letters, from given offsets.

Counts distinct event ids, so a copy redelivered after a crash is counted once, and keeps the
decision for each payment so callers can compare it with what they expected.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from events.records import (
    AvroRecord,
    CommandDeduplicated,
    DeadLetter,
    PaymentAccepted,
    PaymentRejected,
)
from events.risk_records import RiskAssessed, RiskOutcome
from events.routing_records import PaymentCaptured, PaymentFailed, PaymentRouted
from events.wire import DecodeError, EventCodec


@dataclass(frozen=True)
class BatchScope:
    """Which records belong to one batch: its commands, and dead letters of messages published
    at or after given offsets of the commands topic. Anything else on the log (a replay of an
    earlier run after a crash, other clients' traffic) is left out of the tally."""

    command_ids: frozenset[str]
    commands_topic: str
    commands_start: dict[int, int]
    payment_ids: frozenset[str] = frozenset()

    def covers(self, record: AvroRecord) -> bool:
        """True when ``record`` answers a command or message of this batch."""
        if isinstance(record, RiskAssessed | PaymentRouted | PaymentCaptured | PaymentFailed):
            return record.payment_id in self.payment_ids
        if isinstance(record, DeadLetter):
            start = self.commands_start.get(record.source_partition, 0)
            return record.source_topic == self.commands_topic and record.source_offset >= start
        return getattr(record, "command_id", None) in self.command_ids


@dataclass
class LogTally:
    """What the log says happened to a batch of commands."""

    scope: BatchScope | None = None
    decisions: dict[str, PaymentAccepted | PaymentRejected] = field(default_factory=dict)
    deciding_commands: dict[str, set[str]] = field(default_factory=dict)
    deduplicated: dict[str, CommandDeduplicated] = field(default_factory=dict)
    dead_letters: dict[str, DeadLetter] = field(default_factory=dict)
    risk: dict[str, RiskAssessed] = field(default_factory=dict)
    routed: dict[str, PaymentRouted] = field(default_factory=dict)
    ended: dict[str, PaymentCaptured | PaymentFailed] = field(default_factory=dict)
    undecodable_events: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def processed(self) -> int:
        """Commands and poison messages accounted for (a command decided again counts once
        more, so a lost idempotency key shows up as a surplus, not as a hang)."""
        decided = sum(len(commands) for commands in self.deciding_commands.values())
        return decided + len(self.deduplicated) + len(self.dead_letters)

    def rejected_by_reason(self) -> Counter[str]:
        """Rejections per reason code."""
        return Counter(
            str(event.reason)
            for event in self.decisions.values()
            if isinstance(event, PaymentRejected)
        )

    def accepted(self) -> int:
        """Distinct payments accepted."""
        return sum(isinstance(event, PaymentAccepted) for event in self.decisions.values())

    def add(self, record: AvroRecord) -> None:
        """Count one record (duplicates by event id count once)."""
        if self.scope is not None and not self.scope.covers(record):
            return
        if isinstance(record, PaymentAccepted | PaymentRejected):
            self.decisions.setdefault(record.payment_id, record)
            self.deciding_commands.setdefault(record.payment_id, set()).add(record.command_id)
            self._seen_at(record.occurred_at)
        elif isinstance(record, CommandDeduplicated):
            self.deduplicated.setdefault(record.event_id, record)
            self._seen_at(record.occurred_at)
        elif isinstance(record, DeadLetter):
            self.dead_letters.setdefault(record.dead_letter_id, record)
        elif isinstance(record, RiskAssessed):
            self.risk.setdefault(record.payment_id, record)
        elif isinstance(record, PaymentRouted):
            self.routed.setdefault(record.payment_id, record)
        elif isinstance(record, PaymentCaptured | PaymentFailed):
            self.ended.setdefault(record.payment_id, record)

    def risk_outcomes(self) -> Counter[str]:
        """Risk decisions per outcome."""
        return Counter(str(assessed.outcome) for assessed in self.risk.values())

    def rules_fired(self) -> Counter[str]:
        """How many payments each rule fired on."""
        return Counter(firing.rule for assessed in self.risk.values() for firing in assessed.fired)

    def approved(self) -> set[str]:
        """The payments risk control let through at once (held ones are routed on release)."""
        return {p for p, assessed in self.risk.items() if assessed.outcome is RiskOutcome.APPROVE}

    def captured_by_channel(self) -> Counter[str]:
        """Captured payments per channel."""
        return Counter(e.channel for e in self.ended.values() if isinstance(e, PaymentCaptured))

    def failed_by_reason(self) -> Counter[str]:
        """Payments that ended without a capture, per reason."""
        return Counter(e.reason_code for e in self.ended.values() if isinstance(e, PaymentFailed))

    def _seen_at(self, moment: datetime) -> None:
        self.first_at = min(self.first_at or moment, moment)
        self.last_at = max(self.last_at or moment, moment)


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    """The current end offset of every partition of ``topics``."""
    partitions = await topic_partitions(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    # Let the consumer's background task begin: stopping it before its first step raises
    # CancelledError out of aiokafka's stop().
    await asyncio.sleep(0.05)
    try:
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return offsets
    finally:
        await consumer.stop()


async def topic_partitions(
    bootstrap: str, topics: list[str], timeout: float = 15.0
) -> list[TopicPartition]:
    """Every partition of ``topics``; waits for topics created a moment ago to be described."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            described = await admin.describe_topics(topics)
            if all(topic["partitions"] and not topic["error_code"] for topic in described):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not described in {timeout:.0f} s: {described!r}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]


class LogFollower:
    """Follows topics from given start offsets, tallying what it reads."""

    def __init__(
        self,
        bootstrap: str,
        codec: EventCodec,
        start: dict[TopicPartition, int],
        scope: BatchScope | None = None,
    ) -> None:
        self._start = start
        self._codec = codec
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.tally = LogTally(scope)

    async def __aenter__(self) -> LogFollower:
        await self._consumer.start()
        self._consumer.assign(list(self._start))
        for tp, offset in self._start.items():
            self._consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> int:
        """Read what has arrived; returns how many records were read."""
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        for messages in batch.values():
            for message in messages:
                try:
                    self.tally.add(self._codec.decode(message.value))
                except DecodeError:
                    self.tally.undecodable_events += 1
        return sum(len(messages) for messages in batch.values())

    async def until(self, processed: int, timeout: float) -> bool:
        """Poll until ``processed`` commands are accounted for or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.tally.processed < processed and time.monotonic() < deadline:
            await self.poll()
        return self.tally.processed >= processed
