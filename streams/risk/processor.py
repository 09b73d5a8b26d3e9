"""The risk processor: cases, feature store, merchant health.

Three stages, each over topics keyed the way its store is, run by a worker as one processor
(one consumer group, one flush and one commit per batch for all three):
- ``risk-cases`` reads the payment commands, the payment log, the feature snapshots and the
  review commands (all keyed by payment id), validates each command (intake) and decides each
  accepted payment. Intake runs here rather than a hop upstream: a payment's acceptance, its
  case and its fan-out to the feature store leave in one flush;
- ``risk-features`` reads the fanned-out feature requests (partitioned by dimension value) and
  keeps the velocity state of every user, device, IP, account and merchant;
- ``risk-health`` reads outcomes regrouped by merchant and raises alerts and rating changes.
Merchant profiles and the live rule set are read whole by every worker (``BroadcastReader``).
The many small internal records (five feature requests and five snapshots per payment, an
outcome per decision) travel bundled: one record per destination partition and flush.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.records import (
    AvroRecord,
    CommandDeduplicated,
    PaymentAccepted,
    PaymentRejected,
    RequestPayment,
    utc_now,
)
from events.refund_records import RefundFailed, RefundRejected, RefundRouted
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureRequestBatch,
    FeatureSnapshot,
    FeatureSnapshotBatch,
    MerchantOutcome,
    MerchantOutcomeBatch,
    ReviewDecision,
    RiskAssessed,
    RiskHoldResolved,
)
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    ChannelNotified,
    PaymentCaptured,
    PaymentRouted,
)
from events.topics import TopicCatalogue
from events.wire import EventCodec, UnexpectedRecordType
from paystream.config import PaystreamSettings
from streams.engine.broadcast import BroadcastReader, Undecodable
from streams.engine.bundles import Bundling, position
from streams.engine.kafka import Delivered
from streams.engine.outgoing import Outgoing
from streams.engine.processor import ProcessorSpec, combined
from streams.engine.store import StateStore
from streams.intake import PaymentIntake
from streams.risk.aftercare import HealthDesk, HealthEntries
from streams.risk.assessment import epoch_ms
from streams.risk.cases import CaseDesk, NoOpenHold
from streams.risk.feature_store import FeatureDesk, FeatureEntries
from streams.risk.state import RiskState
from streams.validation import ValidationPolicy

log = logging.getLogger(__name__)

RISK, CASES, FEATURES, HEALTH = "risk", "risk-cases", "risk-features", "risk-health"
# Payment-log records no risk desk reads: the processor's own intake outcomes and decisions
# (acted on, and regrouped, when made), and the routing and dispatch steps that follow them.
PASSED_OVER = frozenset(
    cls.subject
    for cls in (
        PaymentAccepted,
        PaymentRejected,
        CommandDeduplicated,
        RiskAssessed,
        RiskHoldResolved,
        PaymentRouted,
        ChannelAttemptPending,
        ChannelAttemptFailed,
        ChannelNotified,
        PaymentCaptured,
        RefundRouted,
        RefundRejected,
        RefundFailed,
    )
)
TIMER_INTERVAL = 0.25


class RiskProcessors:
    """The risk desks over their stores, as three processor specs and one broadcast reader."""

    def __init__(
        self,
        catalogue: TopicCatalogue,
        settings: PaystreamSettings,
        codec: EventCodec,
        bootstrap: str,
        undecodable: Undecodable,
    ) -> None:
        self.topics = catalogue
        self.state = RiskState()
        self.reader = BroadcastReader(
            bootstrap,
            [catalogue.merchants, catalogue.rulesets],
            codec,
            self.state.apply,
            undecodable,
        )
        self.seen_keys = StateStore(catalogue.intake_keys)
        self.intake = PaymentIntake(ValidationPolicy.from_settings(settings), self.seen_keys)
        self.codec = codec
        self.cases = StateStore(catalogue.risk_cases)
        self.features = StateStore(catalogue.risk_feature_state, FeatureEntries())
        self.health = StateStore(catalogue.risk_health, HealthEntries())
        zone = ZoneInfo(settings.business_timezone)
        timeout = settings.risk_gather_timeout_ms
        self.case_desk = CaseDesk(self.cases, self.state, codec, catalogue, zone, timeout)
        self.feature_desk = FeatureDesk(self.features, catalogue)
        self.health_desk = HealthDesk(self.health, self.state, catalogue)

    def spec(self) -> ProcessorSpec:
        """The three stages as the one processor a worker runs; start it once ``reader`` has."""
        return combined(RISK, self.specs())

    def specs(self) -> list[ProcessorSpec]:
        """The three risk processors; run them once ``reader`` has started."""
        topics = self.topics
        cases = ProcessorSpec(
            CASES,
            (topics.commands, topics.events, topics.risk_snapshots, topics.reviews),
            self._on_case_input,
            stores=(self.seen_keys, self.cases),
            passed_over=PASSED_OVER,
            refusals=(NoOpenHold,),
            on_assigned=lambda _partitions: self.case_desk.reindex(),
            timers=((TIMER_INTERVAL, self._nudges),),
            bundles=(
                Bundling(FeatureRequest, _request_rows),
                Bundling(MerchantOutcome, _outcome_batch),
            ),
            # Snapshots and reviews finish payments: they go before the commands that start new
            # ones.
            urgency={topics.risk_snapshots.name: 0, topics.reviews.name: 0},
        )
        features = ProcessorSpec(
            FEATURES,
            (topics.risk_features,),
            self._on_feature_input,
            stores=(self.features,),
            bundles=(Bundling(FeatureSnapshot, _snapshot_rows),),
            urgency={topics.risk_features.name: 1},
        )
        health = ProcessorSpec(
            HEALTH, (topics.risk_outcomes,), self._on_health_input, stores=(self.health,)
        )
        return [cases, features, health]

    def _on_case_input(self, message: Delivered, record: AvroRecord) -> list[Outgoing]:
        now = utc_now()
        if message.topic == self.topics.commands.name:
            outgoing = self._on_command(record, message, now)
        elif isinstance(record, FeatureSnapshotRows | FeatureSnapshotBatch):
            outgoing = []
            for snapshot in record.snapshots:
                outgoing += self.case_desk.on_snapshot(snapshot, now)
        elif isinstance(record, FeatureSnapshot):
            outgoing = self.case_desk.on_snapshot(record, now)
        elif isinstance(record, ReviewDecision):
            outgoing = self.case_desk.on_review(record, now)
        else:
            outgoing = self.case_desk.on_logged(record)
        for key in self.case_desk.purge(message.partition, epoch_ms(now)):
            self.cases.pop(key, None)
        return outgoing

    def _on_command(self, command: AvroRecord, message: Delivered, now: datetime) -> list[Outgoing]:
        """Validate the command; an accepted payment's case opens in the same step."""
        if not isinstance(command, RequestPayment):
            raise UnexpectedRecordType(f"{command.subject} is not a payment command")
        outcome = self.intake.handle(command, now)
        # Encoded once: the same bytes go to the payment log and into the case.
        encoded = self.codec.encode(outcome)
        logged = Outgoing(self.topics.events.name, outcome.payment_id.encode(), outcome, encoded)
        if not isinstance(outcome, PaymentAccepted):
            return [logged]
        self._fresh_merchant(outcome.merchant_id, message.timestamp)
        opened = self.case_desk.on_accepted(outcome, message.partition, now, encoded)
        return [logged, *opened]

    def _on_feature_input(self, message: Delivered, record: AvroRecord) -> list[Outgoing]:
        if isinstance(record, FeatureRequestRows | FeatureRequestBatch):
            outgoing = []
            for index, request in enumerate(record.requests):
                outgoing += self.feature_desk.on_request(request, position(message.offset, index))
            return outgoing
        if isinstance(record, FeatureRequest):
            return self.feature_desk.on_request(record, position(message.offset))
        if isinstance(record, FeatureRelease):
            self.feature_desk.on_release(record, position(message.offset))
        return []

    def _on_health_input(self, message: Delivered, record: AvroRecord) -> list[Outgoing]:
        now = utc_now()
        if isinstance(record, MerchantOutcomeBatch):
            outgoing = []
            for index, outcome in enumerate(record.outcomes):
                at = position(message.offset, index)
                outgoing += self.health_desk.on_outcome(outcome, at, now)
            return outgoing
        if isinstance(record, MerchantOutcome):
            return self.health_desk.on_outcome(record, position(message.offset), now)
        return []

    def _fresh_merchant(self, merchant_id: str, written_ms: int) -> None:
        """Read our own writes: a merchant approved before the command was written must not be
        refused. One catch-up covers every command written before it began."""
        profile = self.state.merchant(merchant_id)
        if profile is None or not profile.may_take_payments:
            try:
                self.reader.caught_up_with(written_ms, timeout=5.0)
            except TimeoutError:
                # Decide on what is known: an unknown merchant is refused, never let through.
                log.warning("merchant topics not caught up in 5 s; deciding %s", merchant_id)

    def _nudges(self) -> list[Outgoing]:
        return self.case_desk.nudges(epoch_ms(utc_now()))


def _request_rows(records: Sequence[AvroRecord]) -> FeatureRequestRows:
    return FeatureRequestRows(requests=[r for r in records if isinstance(r, FeatureRequest)])


def _snapshot_rows(records: Sequence[AvroRecord]) -> FeatureSnapshotRows:
    return FeatureSnapshotRows(snapshots=[r for r in records if isinstance(r, FeatureSnapshot)])


def _outcome_batch(records: Sequence[AvroRecord]) -> MerchantOutcomeBatch:
    return MerchantOutcomeBatch(outcomes=[r for r in records if isinstance(r, MerchantOutcome)])
