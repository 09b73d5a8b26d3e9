"""``paystream bench route``: routing decisions alone and the router processor on the real broker.

- The decisions alone: ``route_payment`` over varied requests on a warmed health board, no
  Kafka, bare and with the explanation built (``to_dict``), as the processor builds it.
- The processor runs alone in one worker (``PAYSTREAM_WORKER_ROLES=["routing"]``) while
  payments arrive at a fixed rate, each as a PaymentAccepted and then a RiskAssessed APPROVE;
  its added latency is the time from a RiskAssessed's log timestamp to its PaymentRouted's.
- The baseline is the bare aiokafka relay from the same run, as in ``bench pipeline``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from aiokafka import AIOKafkaConsumer

from events.admin import delete_topics, ensure_topics
from events.records import RequestPayment, utc_now
from events.risk_records import FeatureValues, RiskAssessed, RiskOutcome
from events.routing_records import PaymentRouted
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.bench.pipeline import Rate, load_commands, relay_rate
from paystream.bench.risk import ZONE, _percentile
from paystream.config import PaystreamSettings
from paystream.demo.orders import RECHARGE_TIERS_FEN, valid_order
from paystream.stack import ROUTER_ONLY, ChildProcess, StackEnvironment, running_workers
from streams.engine.kafka import ProducerLink
from streams.risk.assessment import assess, feature_requests
from streams.risk.feature_store import FeatureDesk
from streams.risk.merchants import MerchantProfile, MerchantStatus
from streams.risk.state import default_ruleset
from streams.routing.bench import START_MS, bench_decisions, sample_requests, warmed_board
from streams.routing.decision import route_payment
from streams.routing.policy_file import default_policy
from streams.routing.quotas import QuotaBook
from streams.validation import accept

DECISIONS_GOAL = 50_000  # decisions/s in-process
P99_GOAL_MS = 20.0  # added latency at P99_GOAL_RATE payments/s
P99_GOAL_RATE = 1_000
# One payment on the log: its key, its PaymentAccepted and its RiskAssessed, encoded.
Encoded = tuple[bytes, bytes, bytes]


@dataclass(frozen=True)
class RouterLatency:
    """The router under a fixed arrival rate."""

    offered_per_second: int
    payments: int
    routed_per_second: float
    p50_ms: float
    p99_ms: float
    # CPU the worker process used per payment while this rate ran (None: not measurable).
    worker_cpu_ms: float | None = None


def decision_rates(count: int) -> list[Rate]:
    """Decisions per second in-process: bare, and with the explanation the processor writes."""
    bare = bench_decisions(count)
    policy, board, quotas = default_policy(), warmed_board(), QuotaBook()
    requests = sample_requests(min(count, 10_000))
    at_ms = START_MS + 2_000 * 50
    route_payment(requests[0], policy, board, quotas, at_ms)  # compiles the policy's tables
    began = time.perf_counter()
    for index in range(count):
        request = requests[index % len(requests)]
        route_payment(request, policy, board, quotas, at_ms + index).to_dict()
    explained = time.perf_counter() - began
    return [
        Rate("routing decisions alone", count, count / bare),
        Rate("routing decisions + explanation (to_dict)", count, explained),
    ]


def _cny_order(rng: random.Random, index: int) -> RequestPayment:
    # The demo's orders with a CNY recharge amount: the currency most traffic pays in.
    order = valid_order(rng, index, utc_now())
    tiered = rng.random() < 0.6
    amount = rng.choice(RECHARGE_TIERS_FEN) if tiered else rng.randint(100, 500_000)
    return replace(order, currency="CNY", region="CN", amount_minor=amount)


def approved_payments(count: int, seed: int) -> list[Encoded]:
    """``count`` payments the shipped rule set approves on its own, encoded as they reach the
    payment log: features from an in-memory feature store, so the records have their real size.
    """
    codec, rng = EventCodec(ManifestSchemas()), random.Random(seed)
    ruleset, desk = default_ruleset(), FeatureDesk({}, TopicCatalogue("bench"))
    encoded: list[Encoded] = []
    index = 0
    while len(encoded) < count:
        order = _cny_order(rng, index)
        accepted = accept(order, utc_now())
        snapshots: dict[str, FeatureValues] = {}
        for request in feature_requests(accepted, ZONE):
            (out,) = desk.on_request(request, index)
            snapshots[request.dimension] = out.record.features  # type: ignore[attr-defined]
        profile = MerchantProfile(order.merchant_id, MerchantStatus.APPROVED, "A")
        assessed = assess(accepted, profile, snapshots, ruleset, utc_now())
        index += 1
        if assessed.outcome is RiskOutcome.APPROVE:
            key = accepted.payment_id.encode()
            encoded.append((key, codec.encode(accepted), codec.encode(assessed)))
    return encoded


def publish_paced(producer: ProducerLink, topic: str, payments: list[Encoded], rate: int) -> None:
    """Write each payment's two records at ``rate`` payments per second, in 10 ms chunks.

    The risk stage writes a decision right after the acceptance it read; here both are written
    together, so the router's wait is for its own work, never for risk's.
    """
    size = max(1, rate // 100)
    began = time.monotonic()
    for number, start in enumerate(range(0, len(payments), size)):
        for key, accepted, assessed in payments[start : start + size]:
            producer.produce(topic, key, accepted)
            producer.produce(topic, key, assessed)
        producer.serve()
        ahead = began + (number + 1) * size / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    producer.settle()


async def _routed_latencies(
    bootstrap: str, topic: str, payment_ids: set[str], timeout: float
) -> tuple[list[float], float]:
    """Added latency per payment (ms) and the decisions' span (s), from log timestamps."""
    codec = EventCodec(ManifestSchemas())
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    stamps: dict[str, dict[str, int]] = {RiskAssessed.subject: {}, PaymentRouted.subject: {}}
    routed_at = stamps[PaymentRouted.subject]
    deadline = time.monotonic() + timeout
    try:
        while not payment_ids <= routed_at.keys() and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    # Keyed by payment id: the header says which stage wrote it, the body waits.
                    seen = stamps.get(codec.subject_of(message.value))
                    if seen is not None:
                        seen.setdefault(message.key.decode(), message.timestamp)
    finally:
        await consumer.stop()
    assessed_at = stamps[RiskAssessed.subject]
    wanted = [p for p in payment_ids if p in routed_at and p in assessed_at]
    if len(wanted) < len(payment_ids):
        raise TimeoutError(f"only {len(wanted)} of {len(payment_ids)} payments routed")
    span = (max(routed_at[p] for p in wanted) - min(routed_at[p] for p in wanted)) / 1000
    return [float(routed_at[p] - assessed_at[p]) for p in wanted], span


def measure(
    producer: ProducerLink, bootstrap: str, topic: str, rate: int, payments: list[Encoded]
) -> RouterLatency:
    """Offer ``payments`` at ``rate`` and read back how long the router took with each."""
    publish_paced(producer, topic, payments, rate)
    # Read once publishing is over: a reader running alongside would take the worker's CPU.
    ids = {key.decode() for key, _, _ in payments}
    latencies, span = asyncio.run(_routed_latencies(bootstrap, topic, ids, 900))
    per_second = len(payments) / span if span > 0 else float("inf")
    p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
    return RouterLatency(rate, len(payments), per_second, p50, p99)


def with_cpu(worker: ChildProcess, run: Callable[[], RouterLatency], count: int) -> RouterLatency:
    """``run()``, with the CPU ``worker`` spent per payment meanwhile."""
    before = worker.cpu_seconds
    latency = run()
    after = worker.cpu_seconds
    if before is None or after is None:
        return latency
    return replace(latency, worker_cpu_ms=(after - before) * 1000 / count)


def run_route_bench(
    settings: PaystreamSettings, bootstrap: str, count: int, rates: list[int]
) -> tuple[list[Rate], list[RouterLatency]]:
    """The relay baseline, the decisions alone and the router at each offered rate.

    The decisions run first, on a quiet machine: after a processor run the broker is still
    busy with what it was sent, and the in-process figures would measure that instead.
    """
    decisions = decision_rates(max(count, 100_000))
    namespace = f"bench-route-{uuid.uuid4().hex[:8]}"
    catalogue, relayed = TopicCatalogue(namespace), TopicCatalogue(f"{namespace}-relay")
    environment = StackEnvironment(bootstrap, namespace, "sqlite://", ROUTER_ONLY)
    topic = catalogue.events.name
    asyncio.run(ensure_topics(bootstrap, catalogue))
    asyncio.run(ensure_topics(bootstrap, relayed))
    try:
        asyncio.run(load_commands(bootstrap, relayed.commands.name, count))
        relay = asyncio.run(relay_rate(bootstrap, relayed, count))
        logs = settings.home / "logs"
        # One producer throughout: a new one holds its first records while it connects and
        # gets its producer id, and their timestamps would charge that wait to the router.
        producer = ProducerLink(bootstrap)
        with running_workers(environment, logs, "bench-route", 1) as (worker,):
            # Warm-up: returns once the worker has joined its group and routed end to end.
            measure(producer, bootstrap, topic, 50, approved_payments(200, seed=99))
            offer = partial(measure, producer, bootstrap, topic)
            # Encoded before each rate's clock (and CPU count) starts, with a seed per position:
            # every run's payments are new to the router.
            latencies = [
                with_cpu(worker, partial(offer, rate, approved_payments(count, seed)), count)
                for seed, rate in enumerate(rates, start=100)
            ]
        return [relay, *decisions], latencies
    finally:
        names = [spec.name for c in (catalogue, relayed) for spec in c.all()]
        names.append(f"{relayed.namespace}.relay-out")
        asyncio.run(delete_topics(bootstrap, names))
