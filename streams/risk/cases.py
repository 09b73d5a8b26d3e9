"""The risk case of each payment: gather its features, decide, hold, release or reject.

``CaseDesk`` is the logic over any mutable mapping of cases (a dict in tests, a changelogged
state store keyed by payment id in the worker). Every input of one payment arrives in the same
partition (the payment log, the snapshots and the review commands are all keyed by payment id),
so one desk sees a payment's whole story in order. Timers never change a case themselves: they
send a message to the case's own partition, and the desk acts on it like on any other input.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from events.identity import derived_id, stage_event_id
from events.records import (
    AvroRecord,
    ChargebackReceived,
    PaymentAccepted,
    PaymentRefunded,
)
from events.risk_records import (
    FeatureRelease,
    FeatureSnapshot,
    HoldResolution,
    MerchantOutcome,
    ReviewDecision,
    ReviewVerdict,
    RiskAssessed,
    RiskHoldResolved,
    RiskOutcome,
)
from events.routing_records import PaymentFailed
from events.topics import TopicCatalogue
from events.wire import EventCodec
from streams.engine.outgoing import Outgoing
from streams.risk.assessment import (
    assess,
    business_date,
    dimension_values,
    epoch_ms,
    feature_key,
    feature_requests,
)
from streams.risk.state import RiskState

GATHERING, HELD, CLOSED = "gathering", "held", "closed"
TIMEOUT_DIMENSION = "__timeout__"
DELAY_TIMER = "system:delay-timer"
HOLD_STAGE = "risk-hold"
Case = dict[str, Any]


class NoOpenHold(ValueError):
    """A review command names a payment that is not held."""


class CaseDesk:
    """Decides each payment once, holds what must wait, and resolves holds."""

    def __init__(
        self,
        cases: MutableMapping[str, Case],
        state: RiskState,
        codec: EventCodec,
        topics: TopicCatalogue,
        zone: ZoneInfo,
        gather_timeout_ms: int = 60_000,
        closed_retention_ms: int = 600_000,
    ) -> None:
        self._cases = cases
        self._state = state
        self._codec = codec
        self._topics = topics
        self._zone = zone
        self._gather_timeout_ms = gather_timeout_ms
        self._closed_retention_ms = closed_retention_ms
        self._closed: dict[int, deque[tuple[int, str]]] = {}
        self._timers: dict[str, int] = {}
        # The open cases' payments as records, so deciding need not decode the stored copy.
        self._live: dict[str, PaymentAccepted] = {}

    def on_accepted(
        self,
        accepted: PaymentAccepted,
        partition: int,
        now: datetime,
        encoded: bytes | None = None,
    ) -> list[Outgoing]:
        """Open the payment's case and fan it out to the feature store (once per payment).

        ``encoded`` is the record as it came off the log, kept as is rather than encoded again.
        """
        if accepted.payment_id in self._cases:
            return []  # a redelivery: the case was opened (and maybe decided) already
        requests = feature_requests(accepted, self._zone)
        now_ms = epoch_ms(now)
        self._live[accepted.payment_id] = accepted
        stored = encoded if encoded is not None else self._codec.encode(accepted)
        self._cases[accepted.payment_id] = {
            "state": GATHERING,
            "partition": partition,
            "accepted": base64.b64encode(stored).decode(),
            "expected": [request.dimension for request in requests],
            "snapshots": {},
            "opened_ms": now_ms,
        }
        self._timers[accepted.payment_id] = now_ms + self._gather_timeout_ms
        features = self._topics.risk_features.name
        return [Outgoing(features, feature_key(r.dimension, r.value), r) for r in requests]

    def on_snapshot(self, snapshot: FeatureSnapshot, now: datetime) -> list[Outgoing]:
        """Collect one dimension's features; decide when the last arrives or time runs out."""
        case = self._cases.get(snapshot.payment_id)
        if case is None or case["state"] != GATHERING:
            return []  # late or repeated: the payment was decided already
        timed_out = snapshot.dimension == TIMEOUT_DIMENSION
        if not timed_out:
            case["snapshots"][snapshot.dimension] = dict(snapshot.features)
        missing = tuple(d for d in case["expected"] if d not in case["snapshots"])
        if missing and not timed_out:
            self._cases[snapshot.payment_id] = case  # a store logs a key when it is assigned
            return []
        return self._decide(snapshot.payment_id, case, missing, now)

    def on_review(self, decision: ReviewDecision, now: datetime) -> list[Outgoing]:
        """Release or reject a held payment; a system nudge for a settled case is ignored."""
        case = self._cases.get(decision.payment_id)
        if case is None or case["state"] != HELD:
            if decision.reviewer == DELAY_TIMER:
                return []
            raise NoOpenHold(f"payment {decision.payment_id} is not held for review or delay")
        accepted = self._accepted(decision.payment_id, case)
        resolution, by, reason = self._resolution(decision, accepted)
        resolved = RiskHoldResolved(
            event_id=stage_event_id(decision.payment_id, HOLD_STAGE),
            payment_id=decision.payment_id,
            occurred_at=now,
            merchant_id=accepted.merchant_id,
            amount_minor=accepted.amount_minor,
            currency=accepted.currency,
            hold=RiskOutcome(case["hold"]),
            resolution=resolution,
            resolved_by=by,
            reason=reason,
        )
        self._close(decision.payment_id, case, now)
        outgoing = [
            Outgoing(self._topics.events.name, decision.payment_id.encode(), resolved),
            *self._regrouped(resolved),
        ]
        if resolution is HoldResolution.REJECTED:
            outgoing += self._releases(accepted)
        return outgoing

    def on_logged(self, record: AvroRecord) -> list[Outgoing]:
        """Regroup an outcome others wrote to the payment log (refunds, chargebacks, channel
        declines) by merchant.

        The desk's own decisions are regrouped as it makes them, so the processor need not
        decode them again when they come back from the log.
        """
        if not isinstance(record, PaymentRefunded | ChargebackReceived | PaymentFailed):
            return []
        return self._regrouped(record)

    def _regrouped(self, record: AvroRecord) -> list[Outgoing]:
        outcome = merchant_outcome(record)
        if outcome is None:
            return []
        key = outcome.merchant_id.encode()
        return [Outgoing(self._topics.risk_outcomes.name, key, outcome)]

    def purge(self, partition: int, now_ms: int) -> list[str]:
        """Closed cases of ``partition`` old enough to forget; a redelivery comes sooner."""
        closed = self._closed.get(partition)
        expired: list[str] = []
        while closed and closed[0][0] + self._closed_retention_ms <= now_ms:
            expired.append(closed.popleft()[1])
        return expired

    def nudges(self, now_ms: int) -> list[Outgoing]:
        """Messages that wake cases whose gathering timed out or whose delay ran out."""
        due = [payment for payment, at in self._timers.items() if at <= now_ms]
        outgoing = []
        for payment_id in due:
            # Nudged again later unless the case settles: a lost nudge only delays it.
            self._timers[payment_id] = now_ms + self._gather_timeout_ms
            nudge = self._nudge(payment_id, now_ms)
            if nudge is not None:
                outgoing.append(nudge)
        return outgoing

    def reindex(self) -> None:
        """Rebuild the timers and the purge queues from the cases this worker holds (after a
        start or a rebalance), so nothing restored from the changelog is left behind."""
        self._timers, self._live, closed = {}, {}, []
        for payment_id, case in self._cases.items():
            if case["state"] == GATHERING:
                self._timers[payment_id] = case["opened_ms"] + self._gather_timeout_ms
            elif case["state"] == HELD and case.get("until_ms") is not None:
                self._timers[payment_id] = case["until_ms"]
            elif case["state"] == CLOSED:
                closed.append((case["closed_ms"], case["partition"], payment_id))
        self._closed = {}
        for closed_ms, partition, payment_id in sorted(closed):
            self._closed.setdefault(partition, deque()).append((closed_ms, payment_id))

    def _decide(
        self, payment_id: str, case: Case, missing: tuple[str, ...], now: datetime
    ) -> list[Outgoing]:
        accepted = self._accepted(payment_id, case)
        profile = self._state.merchant(accepted.merchant_id)
        assessed = assess(accepted, profile, case["snapshots"], self._state.ruleset, now, missing)
        outgoing = [
            Outgoing(self._topics.events.name, payment_id.encode(), assessed),
            *self._regrouped(assessed),
        ]
        if assessed.outcome in (RiskOutcome.REVIEW, RiskOutcome.DELAY):
            self._hold(payment_id, case, assessed)
        else:
            self._close(payment_id, case, now)
        if assessed.outcome is RiskOutcome.REJECT:
            outgoing += self._releases(accepted)
        return outgoing

    def _hold(self, payment_id: str, case: Case, assessed: RiskAssessed) -> None:
        until = assessed.hold_until
        case.update(state=HELD, hold=str(assessed.outcome), snapshots={})
        case["until_ms"] = epoch_ms(until) if until is not None else None
        # A review hold waits for a person: only a delay has a timer (the gathering one ends).
        self._timers.pop(payment_id, None)
        if until is not None:
            self._timers[payment_id] = epoch_ms(until)
        self._cases[payment_id] = case

    def _close(self, payment_id: str, case: Case, now: datetime) -> None:
        now_ms = epoch_ms(now)
        partition = case["partition"]
        self._cases[payment_id] = {"state": CLOSED, "closed_ms": now_ms, "partition": partition}
        self._closed.setdefault(partition, deque()).append((now_ms, payment_id))
        self._timers.pop(payment_id, None)
        self._live.pop(payment_id, None)

    def _resolution(
        self, decision: ReviewDecision, accepted: PaymentAccepted
    ) -> tuple[HoldResolution, str, str]:
        if decision.verdict is ReviewVerdict.REJECT:
            return HoldResolution.REJECTED, decision.reviewer, decision.reason
        profile = self._state.merchant(accepted.merchant_id)
        if profile is None or not profile.may_take_payments:
            # The signal that rejects a waiting payment: its merchant lost approval meanwhile.
            return HoldResolution.REJECTED, "merchant-status", "merchant no longer approved"
        return HoldResolution.RELEASED, decision.reviewer, decision.reason

    def _releases(self, accepted: PaymentAccepted) -> list[Outgoing]:
        """Give a rejected payment's amount back to every daily total it was reserved in."""
        date = business_date(accepted.occurred_at, self._zone)
        return [
            Outgoing(
                self._topics.risk_features.name,
                feature_key(dimension, value),
                FeatureRelease(
                    payment_id=accepted.payment_id,
                    dimension=dimension,
                    value=value,
                    business_date=date,
                    amount_minor=accepted.amount_minor,
                    currency=accepted.currency,
                ),
            )
            for dimension, value in dimension_values(accepted).items()
        ]

    def _nudge(self, payment_id: str, now_ms: int) -> Outgoing | None:
        case = self._cases.get(payment_id)
        if case is None:
            self._timers.pop(payment_id, None)
            return None
        key = payment_id.encode()
        if case["state"] == GATHERING:
            timeout = FeatureSnapshot(
                payment_id=payment_id, dimension=TIMEOUT_DIMENSION, features={}
            )
            return Outgoing(self._topics.risk_snapshots.name, key, timeout)
        if case["state"] == HELD and case.get("until_ms") is not None:
            return Outgoing(self._topics.reviews.name, key, delay_expired(payment_id, now_ms))
        self._timers.pop(payment_id, None)
        return None

    def _accepted(self, payment_id: str, case: Case) -> PaymentAccepted:
        live = self._live.get(payment_id)
        if live is not None:
            return live
        return self._codec.decode_as(base64.b64decode(case["accepted"]), [PaymentAccepted])


def delay_expired(payment_id: str, now_ms: int) -> ReviewDecision:
    """The command the delay timer sends: release, unless a signal says otherwise."""
    return ReviewDecision(
        command_id=derived_id(payment_id, "delay-expired"),
        payment_id=payment_id,
        issued_at=datetime.fromtimestamp(now_ms / 1000, UTC),
        verdict=ReviewVerdict.APPROVE,
        reviewer=DELAY_TIMER,
        reason="delay ran out with no signal against the payment",
    )


DECLINED_BY_CHANNEL = "DECLINED"
# The payment-log records a merchant's health counts.
OUTCOME_RECORDS = (
    RiskAssessed,
    RiskHoldResolved,
    PaymentRefunded,
    ChargebackReceived,
    PaymentFailed,
)


def merchant_outcome(record: AvroRecord) -> MerchantOutcome | None:
    """The health counters a payment-log event counts towards, or None for other events."""
    if not isinstance(record, OUTCOME_RECORDS):
        return None
    kinds = outcome_kinds(record)
    if not kinds:
        return None
    return MerchantOutcome(
        merchant_id=record.merchant_id,
        payment_id=record.payment_id,
        at_ms=epoch_ms(record.occurred_at),
        kinds=kinds,
        source_event_id=record.event_id,
    )


def outcome_kinds(record: AvroRecord) -> list[str]:
    """Which merchant-health counters a payment-log event counts towards."""
    if isinstance(record, RiskAssessed):
        extra = {RiskOutcome.APPROVE: ["approved"], RiskOutcome.REJECT: ["declines"]}
        return ["payments", *extra.get(record.outcome, [])]
    if isinstance(record, RiskHoldResolved):
        return ["approved" if record.resolution is HoldResolution.RELEASED else "declines"]
    if isinstance(record, PaymentRefunded):
        return ["refunds"]
    if isinstance(record, ChargebackReceived):
        return ["chargebacks"]
    if isinstance(record, PaymentFailed) and record.reason_code == DECLINED_BY_CHANNEL:
        # The payer's bank or wallet said no: a decline as much as a risk rejection is.
        return ["declines"]
    return []
