"""``paystream bench pipeline``: the worker's intake against a bare relay on the same broker.

Both runs read the same pre-loaded commands and write one message per command to the payment
log. Intake runs inside the risk-cases processor, so the worker also opens a risk case (and
sends its feature requests) for every accepted payment: that work is part of the figure. Each
rate is taken from the output records' timestamps (first to last), so start-up and group joins
are left out of both alike.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.admin import create_missing_topics, delete_topics, ensure_topics
from events.client import command_key
from events.records import CommandDeduplicated, PaymentAccepted, PaymentRejected, utc_now
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.config import PaystreamSettings
from paystream.demo.orders import valid_order
from paystream.stack import RISK_ONLY, StackEnvironment, running_workers
from streams.intake import PaymentIntake
from streams.validation import ValidationPolicy

INTAKE_OUTPUTS = frozenset(
    cls.subject for cls in (PaymentAccepted, PaymentRejected, CommandDeduplicated)
)


@dataclass(frozen=True)
class Rate:
    """Messages moved and the rate between the first and last output record."""

    name: str
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


async def load_commands(bootstrap: str, topic: str, count: int) -> None:
    """Pre-load ``count`` encoded RequestPayment commands with distinct idempotency keys."""
    import random

    codec, rng, now = EventCodec(ManifestSchemas()), random.Random(1), utc_now()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        futures = []
        for index in range(count):
            command = valid_order(rng, index, now)
            futures.append(
                await producer.send(topic, codec.encode(command), key=command_key(command))
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def output_span(
    bootstrap: str,
    topic: str,
    count: int,
    timeout: float,
    subjects: frozenset[str] | None = None,
) -> float:
    """Seconds between the first and last record's timestamps once ``count`` have arrived,
    counting only records of ``subjects`` when given (the log also carries later stages')."""
    codec = EventCodec(ManifestSchemas())
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    first, last, seen = None, None, 0
    deadline = time.monotonic() + timeout
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen} of {count} records reached {topic}")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for message in messages:
                    if subjects is not None and codec.subject_of(message.value) not in subjects:
                        continue
                    first = message.timestamp if first is None else min(first, message.timestamp)
                    last = message.timestamp if last is None else max(last, message.timestamp)
                    seen += 1
    finally:
        await consumer.stop()
    return ((last or 0) - (first or 0)) / 1000


async def bare_relay(bootstrap: str, source: str, target: str, count: int) -> None:
    """Consume ``count`` records and produce each, unchanged, to ``target``: the baseline."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"relay-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    relayed = 0
    try:
        while relayed < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            futures = [
                await producer.send(target, message.value, key=message.key)
                for messages in batch.values()
                for message in messages
            ]
            await asyncio.gather(*futures)
            relayed += len(futures)
            if futures:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def intake_logic_rate(count: int) -> Rate:
    """Decode, validate, dedupe and encode in one loop, without Kafka: the processor's floor."""
    import random

    codec, rng, now = EventCodec(ManifestSchemas()), random.Random(2), utc_now()
    messages = [codec.encode(valid_order(rng, i, now)) for i in range(count)]
    intake = PaymentIntake(ValidationPolicy(10_000_000), {})
    began = time.perf_counter()
    for message in messages:
        outcome = intake.handle(codec.decode(message), now)  # type: ignore[arg-type]
        codec.encode(outcome)
    return Rate("intake logic alone (no Kafka)", count, time.perf_counter() - began)


async def relay_rate(bootstrap: str, catalogue: TopicCatalogue, count: int) -> Rate:
    """The baseline: the commands relayed unchanged by a bare aiokafka consumer/producer."""
    relay_out = replace(catalogue.events, name=f"{catalogue.namespace}.relay-out")
    await create_missing_topics(bootstrap, [relay_out])
    await bare_relay(bootstrap, catalogue.commands.name, relay_out.name, count)
    span = await output_span(bootstrap, relay_out.name, count, timeout=600)
    return Rate("bare aiokafka relay", count, span)


def run_pipeline_bench(
    settings: PaystreamSettings, bootstrap: str, count: int, workers: int = 1
) -> list[Rate]:
    """Run the baseline relay, ``workers`` intake workers and the logic alone on ``count``
    commands; several workers share the partitions through their consumer group."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    catalogue = TopicCatalogue(namespace)
    # The worker runs risk (intake included) alone: the router would share its loop.
    environment = StackEnvironment(bootstrap, namespace, "sqlite://", RISK_ONLY)
    asyncio.run(ensure_topics(bootstrap, catalogue))
    asyncio.run(load_commands(bootstrap, catalogue.commands.name, count))
    try:
        relay = asyncio.run(relay_rate(bootstrap, catalogue, count))
        with running_workers(environment, settings.home / "logs", "bench-worker", workers):
            span = asyncio.run(
                output_span(bootstrap, catalogue.events.name, count, 900, INTAKE_OUTPUTS)
            )
        label = "worker" if workers == 1 else f"{workers} workers"
        processor = Rate(f"intake in risk-cases ({label}, cases opened)", count, span)
        return [relay, processor, intake_logic_rate(count)]
    finally:
        topics = [spec.name for spec in catalogue.all()] + [f"{namespace}.relay-out"]
        asyncio.run(delete_topics(bootstrap, topics))
