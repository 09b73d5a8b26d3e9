"""The worker freezes surviving objects out of the cycle collector's sight; that is only safe
while the processing path builds no reference cycles, which these tests hold it to."""

from __future__ import annotations

import dataclasses
import gc
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.records import AvroRecord, PaymentAccepted
from events.risk_records import FeatureRequest, FeatureSnapshot
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from streams.engine.collector import CollectorPacing
from streams.engine.store import StateStore
from streams.intake import PaymentIntake
from streams.risk.aftercare import HealthDesk, HealthEntries
from streams.risk.cases import CaseDesk, merchant_outcome
from streams.risk.feature_store import FeatureDesk, FeatureEntries
from streams.risk.state import RiskState
from streams.validation import ValidationPolicy
from tests.unit.samples import ACCEPTED_AT, merchant_applied, merchant_reviewed, request_payment

TOPICS = TopicCatalogue("t")
CODEC = EventCodec(ManifestSchemas())
ZONE = ZoneInfo("Asia/Shanghai")


class Pipeline:
    """The risk desks over changelogged stores, wired the way the worker wires them, with
    every internal record going through the codec as it would through Kafka."""

    def __init__(self) -> None:
        state = RiskState()
        for record in (merchant_applied("shop-0042"), merchant_reviewed("shop-0042", "A")):
            state.apply(record)
        self.keys = StateStore(TOPICS.intake_keys)
        self.cases = StateStore(TOPICS.risk_cases)
        self.features = StateStore(TOPICS.risk_feature_state, FeatureEntries())
        self.health = StateStore(TOPICS.risk_health, HealthEntries())
        for store in self.stores:
            store.bind(0)
        self.intake = PaymentIntake(ValidationPolicy(10_000_000), self.keys)
        self.case_desk = CaseDesk(self.cases, state, CODEC, TOPICS, ZONE)
        self.feature_desk = FeatureDesk(self.features, TOPICS)
        self.health_desk = HealthDesk(self.health, state, TOPICS)
        self.position = 0

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return self.keys, self.cases, self.features, self.health

    def pay(self, number: int) -> None:
        """One payment from command to decision and merchant outcome."""
        now = ACCEPTED_AT + timedelta(seconds=number)
        command = request_payment(
            idempotency_key=f"order-{number}",
            command_id=str(uuid.UUID(int=number)),
            user_id=f"u{number % 7}",
            device_id=f"d{number % 5}",
        )
        accepted = self.intake.handle(CODEC.decode(CODEC.encode(command)), now)
        assert isinstance(accepted, PaymentAccepted)
        opened = self.case_desk.on_accepted(accepted, 0, now, CODEC.encode(accepted))
        requests = [o.record for o in opened if isinstance(o.record, FeatureRequest)]
        snapshots = []
        for request in self._through_kafka_requests(requests):
            self.position += 1
            out = self.feature_desk.on_request(request, self.position)
            snapshots += [o.record for o in out if isinstance(o.record, FeatureSnapshot)]
        for snapshot in self._through_kafka_snapshots(snapshots):
            for out in self.case_desk.on_snapshot(snapshot, now):
                self._count(out.record, now)
        for store in self.stores:
            store.take_changes()

    def _count(self, record: AvroRecord, now: datetime) -> None:
        CODEC.encode(record)
        outcome = merchant_outcome(record)
        if outcome is not None:
            self.position += 1
            self.health_desk.on_outcome(outcome, self.position, now)

    def _through_kafka_requests(self, requests: list[FeatureRequest]) -> list[FeatureRequest]:
        rows = CODEC.decode(CODEC.encode(FeatureRequestRows(requests=requests)))
        assert isinstance(rows, FeatureRequestRows)
        return rows.requests

    def _through_kafka_snapshots(self, snapshots: list[FeatureSnapshot]) -> list[FeatureSnapshot]:
        rows = CODEC.decode(CODEC.encode(FeatureSnapshotRows(snapshots=snapshots)))
        assert isinstance(rows, FeatureSnapshotRows)
        return rows.snapshots


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("collector_off")
def test_processing_payments_leaves_no_cyclic_garbage() -> None:
    pipeline = Pipeline()
    pipeline.pay(0)  # first use of caches and lazily built tables
    gc.collect()
    for number in range(1, 300):
        pipeline.pay(number)
    assert gc.collect() == 0
    assert len(pipeline.cases) == 300


@pytest.mark.usefixtures("collector_off")
def test_dropped_partitions_are_freed_without_the_collector() -> None:
    pipeline = Pipeline()
    for number in range(50):
        pipeline.pay(number)
    gc.collect()
    for store in pipeline.stores:
        store.drop({0})
    assert all(len(store) == 0 for store in pipeline.stores)
    assert gc.collect() == 0


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """Pacing sets the process's thresholds and freezes; other tests get them back."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector_restored")
def test_pacing_freezes_survivors_at_most_once_per_interval() -> None:
    pacing = CollectorPacing(interval=3600)
    pacing.tick()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    survivors = [dataclasses.replace(request_payment()) for _ in range(100)]
    pacing.tick()  # within the interval: nothing more frozen
    assert gc.get_freeze_count() == frozen
    del survivors


@pytest.mark.usefixtures("collector_restored")
def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    pipeline = Pipeline()
    for number in range(20):
        pipeline.pay(number)
    CollectorPacing(interval=0).tick()
    frozen = gc.get_freeze_count()
    for store in pipeline.stores:
        store.drop({0})
    del pipeline
    assert gc.get_freeze_count() < frozen
