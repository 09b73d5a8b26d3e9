"""``paystream bench risk``: the rule engine alone and the risk processor on the real broker.

- The rule engine alone runs the backtest path (a recorded decision re-decided with a rule set)
  on realistic feature maps: decisions per second, no Kafka.
- The processor runs in one worker (or several) while payments arrive at a fixed rate; its added
  latency is the time from a PaymentAccepted's log timestamp to its RiskAssessed's.
- The baseline is the bare aiokafka relay from the same run, as in ``bench pipeline``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
import uuid
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from events.admin import delete_topics, ensure_topics
from events.client import command_key
from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.identity import payment_id_for
from events.records import PaymentAccepted, RequestPayment, utc_now
from events.risk_client import RiskClient
from events.risk_records import FeatureValues, RiskAssessed
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.bench.pipeline import Rate, load_commands, relay_rate
from paystream.config import PaystreamSettings
from paystream.demo.orders import valid_order
from paystream.stack import RISK_ONLY, ChildProcess, StackEnvironment, running_workers
from streams.engine.kafka import ProducerLink
from streams.risk.assessment import assess, feature_requests
from streams.risk.backtest import redecide
from streams.risk.feature_store import FeatureDesk
from streams.risk.merchants import MerchantProfile, MerchantStatus
from streams.risk.state import default_ruleset
from streams.validation import accept

MERCHANTS = 300
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Latency:
    """The processor under a fixed arrival rate."""

    offered_per_second: int
    payments: int
    decided_per_second: float
    p50_ms: float
    p99_ms: float
    # p99 of each hop (ms): accepted to requests sent, requests to snapshots, snapshots to
    # decision, from the log timestamps of the bundles that carried each payment.
    hop_p99_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # CPU the worker processes used per payment while this rate ran (None: not measurable).
    worker_cpu_ms: float | None = None


def _orders(count: int, seed: int) -> list[RequestPayment]:
    """Realistic orders: users come back (about two payments each) with their own device and
    card, as real traffic does, so most payments pass and the counters have history."""
    rng, now = random.Random(seed), utc_now()
    orders = []
    for index in range(count):
        order = valid_order(rng, index, now)
        user = rng.randint(1, count // 2 + 1)
        orders.append(
            replace(
                order,
                user_id=f"u{seed}-{user}",
                device_id=f"d{seed}-{user}",
                account_fingerprint=f"acc{seed}-{user}",
            )
        )
    return orders


def recorded_decisions(count: int) -> list[RiskAssessed]:
    """Decisions as the processor records them, made in memory over a feature store."""
    ruleset, desk = default_ruleset(), FeatureDesk({}, TopicCatalogue("bench"))
    decisions = []
    for offset, order in enumerate(_orders(count, seed=3)):
        accepted: PaymentAccepted = accept(order, order.issued_at)
        snapshots: dict[str, FeatureValues] = {}
        for request in feature_requests(accepted, ZONE):
            (out,) = desk.on_request(request, offset)
            snapshots[request.dimension] = out.record.features  # type: ignore[attr-defined]
        profile = MerchantProfile(order.merchant_id, MerchantStatus.APPROVED, "B")
        decisions.append(assess(accepted, profile, snapshots, ruleset, utc_now()))
    return decisions


def engine_rate(count: int) -> Rate:
    """The backtest path: re-deciding recorded decisions with the shipped rule set."""
    decisions, ruleset = recorded_decisions(count), default_ruleset()
    began = time.perf_counter()
    for assessed in decisions:
        redecide(assessed, ruleset)
    rules = len(ruleset.rules)
    return Rate(f"rule engine alone ({rules} rules + limits)", count, time.perf_counter() - began)


async def _onboard(bootstrap: str, namespace: str) -> None:
    async with RiskClient(bootstrap, namespace=namespace) as risk:
        for number in range(1, MERCHANTS + 1):
            merchant = f"shop-{number:04d}"
            await risk.apply_merchant(merchant, merchant, "games")
            await risk.review_merchant(merchant, "A", "bench", "ok")


def _publish_paced(bootstrap: str, topic: str, orders: list[RequestPayment], rate: int) -> None:
    """Publish ``orders`` at ``rate`` per second as ready-made batches.

    The publishers of a real deployment run elsewhere; here the bench shares two cores with the
    worker, so the commands are encoded before the clock starts, and each 10 ms chunk is handed
    to the producer at once (which chooses their partitions in C).
    """
    codec = EventCodec(ManifestSchemas())
    producer = ProducerLink(bootstrap)
    size = max(1, rate // 100)
    encoded = [(command_key(order), codec.encode(order)) for order in orders]
    chunks = [encoded[start : start + size] for start in range(0, len(encoded), size)]
    began = time.monotonic()
    for number, chunk in enumerate(chunks):
        for key, value in chunk:
            producer.produce(topic, key, value)
        producer.serve()
        ahead = began + (number + 1) * size / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    producer.settle()


async def _latencies(
    bootstrap: str, topic: str, payment_ids: set[str], timeout: float
) -> tuple[list[float], float, tuple[dict[str, int], dict[str, int]]]:
    """Added latency per payment (ms), the decisions' span (s), and when each payment was
    accepted and decided (log timestamps), read from the log."""
    codec = EventCodec(ManifestSchemas())
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    accepted_at: dict[str, int] = {}
    decided_at: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while not payment_ids <= decided_at.keys() and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    _note(codec, message, accepted_at, decided_at)
    finally:
        await consumer.stop()
    wanted = [p for p in payment_ids if p in decided_at and p in accepted_at]
    if len(wanted) < len(payment_ids):
        raise TimeoutError(f"only {len(wanted)} of {len(payment_ids)} payments decided")
    span = (max(decided_at[p] for p in wanted) - min(decided_at[p] for p in wanted)) / 1000
    added = [float(decided_at[p] - accepted_at[p]) for p in wanted]
    return added, span, (accepted_at, decided_at)


def _note(
    codec: EventCodec,
    message: ConsumerRecord,
    accepted_at: dict[str, int],
    decided_at: dict[str, int],
) -> None:
    # The payment log is keyed by payment id: only the header is read, never the body.
    subject = codec.subject_of(message.value)
    if subject == PaymentAccepted.subject:
        accepted_at.setdefault(message.key.decode(), message.timestamp)
    elif subject == RiskAssessed.subject:
        decided_at.setdefault(message.key.decode(), message.timestamp)


async def _bundle_times(bootstrap: str, topic: str, payment_ids: set[str]) -> dict[str, int]:
    """When the last bundle carrying each payment (requests or snapshots) reached ``topic``."""
    codec = EventCodec(ManifestSchemas())
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    times: dict[str, int] = {}
    try:
        while batch := await consumer.getmany(timeout_ms=1000):
            for message in (m for messages in batch.values() for m in messages):
                for payment_id in _bundled_payments(codec.decode(message.value)):
                    if payment_id in payment_ids:
                        times[payment_id] = max(times.get(payment_id, 0), message.timestamp)
    finally:
        await consumer.stop()
    return times


def _bundled_payments(record: object) -> list[str]:
    # The bench's topics are fresh: only the bundles today's processor writes are on them.
    if isinstance(record, FeatureRequestRows):
        return [request.payment_id for request in record.requests]
    if isinstance(record, FeatureSnapshotRows):
        return [snapshot.payment_id for snapshot in record.snapshots]
    return []


def _hop_p99(stamps: list[dict[str, int]], payment_ids: set[str]) -> tuple[float, float, float]:
    hops = []
    for earlier, later in itertools.pairwise(stamps):
        known = [p for p in payment_ids if p in earlier and p in later]
        hops.append(_percentile([float(later[p] - earlier[p]) for p in known], 0.99))
    return hops[0], hops[1], hops[2]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _measure(
    environment: StackEnvironment, catalogue: TopicCatalogue, rate: int, count: int, seed: int
) -> Latency:
    orders = _orders(count, seed)
    ids = {payment_id_for(order.merchant_id, order.idempotency_key) for order in orders}
    _publish_paced(environment.bootstrap, catalogue.commands.name, orders, rate)
    # Read once publishing is over: the times are the log's own, and a reader running alongside
    # would take the processor's CPU on a small machine.
    latencies, span, stamps = await _latencies(
        environment.bootstrap, catalogue.events.name, ids, 900
    )
    requests = await _bundle_times(environment.bootstrap, catalogue.risk_features.name, ids)
    snapshots = await _bundle_times(environment.bootstrap, catalogue.risk_snapshots.name, ids)
    hops = _hop_p99([stamps[0], requests, snapshots, stamps[1]], ids)
    per_second = count / span if span > 0 else float("inf")
    p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
    return Latency(rate, count, per_second, p50, p99, hops)


def _measure_with_cpu(
    workers: list[ChildProcess],
    environment: StackEnvironment,
    catalogue: TopicCatalogue,
    rate: int,
    count: int,
) -> Latency:
    """``_measure`` at ``rate``, with the CPU the workers spent per payment meanwhile."""
    before = [worker.cpu_seconds for worker in workers]
    latency = asyncio.run(_measure(environment, catalogue, rate, count, seed=rate))
    after = [worker.cpu_seconds for worker in workers]
    if None in before or None in after:
        return latency
    spent = sum(a for a in after if a is not None) - sum(b for b in before if b is not None)
    return replace(latency, worker_cpu_ms=spent * 1000 / count)


def run_risk_bench(
    settings: PaystreamSettings, bootstrap: str, count: int, rates: list[int], workers: int = 1
) -> tuple[list[Rate], list[Latency]]:
    """The relay baseline, the engine alone, and the processor at each offered rate.

    The engine runs first, on a quiet machine: after a processor run the broker is still busy
    with what it was sent, and the engine's figure would measure that instead.
    """
    engine = engine_rate(max(count, 20_000))
    namespace = f"bench-risk-{uuid.uuid4().hex[:8]}"
    catalogue, relayed = TopicCatalogue(namespace), TopicCatalogue(f"{namespace}-relay")
    # The worker runs risk (intake included) alone: the router would share its loop.
    environment = StackEnvironment(bootstrap, namespace, "sqlite://", RISK_ONLY)
    asyncio.run(ensure_topics(bootstrap, catalogue))
    asyncio.run(ensure_topics(bootstrap, relayed))
    try:
        asyncio.run(load_commands(bootstrap, relayed.commands.name, count))
        relay = asyncio.run(relay_rate(bootstrap, relayed, count))
        asyncio.run(_onboard(bootstrap, namespace))
        with running_workers(environment, settings.home / "logs", "bench-risk", workers) as running:
            asyncio.run(_measure(environment, catalogue, 50, 200, seed=99))  # warm-up
            latencies = [
                _measure_with_cpu(running, environment, catalogue, rate, count) for rate in rates
            ]
        return [relay, engine], latencies
    finally:
        names = [spec.name for c in (catalogue, relayed) for spec in c.all()]
        names.append(f"{relayed.namespace}.relay-out")
        asyncio.run(delete_topics(bootstrap, names))
