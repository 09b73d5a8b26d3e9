"""The risk-decision read model: each payment's risk outcome and the review queue."""

from __future__ import annotations

from sqlalchemy.orm import Session

from events.records import AvroRecord
from events.risk_records import HoldResolution, RiskAssessed, RiskHoldResolved, RiskOutcome
from projections.models import RiskDecision

HELD_REVIEW = "HELD_REVIEW"
HELD_DELAY = "HELD_DELAY"
APPROVED = "APPROVED"
DECLINED = "DECLINED"
HELD = (HELD_REVIEW, HELD_DELAY)
_STATUS = {
    RiskOutcome.APPROVE: APPROVED,
    RiskOutcome.REJECT: DECLINED,
    RiskOutcome.REVIEW: HELD_REVIEW,
    RiskOutcome.DELAY: HELD_DELAY,
}


class RiskDecisionProjection:
    """Applies RiskAssessed and RiskHoldResolved to the ``risk_decisions`` table."""

    name = "risk-decisions"

    def apply(self, session: Session, record: AvroRecord) -> None:
        """Apply one event; other events are ignored."""
        if isinstance(record, RiskAssessed):
            self._assessed(session, record)
        elif isinstance(record, RiskHoldResolved):
            self._resolved(session, record)

    def _assessed(self, session: Session, event: RiskAssessed) -> None:
        if session.get(RiskDecision, event.payment_id) is not None:
            return  # a redelivered copy: the first decision stands
        session.add(
            RiskDecision(
                payment_id=event.payment_id,
                merchant_id=event.merchant_id,
                user_id=event.user_id,
                amount_minor=event.amount_minor,
                currency=event.currency,
                outcome=str(event.outcome),
                status=_STATUS[event.outcome],
                fired_rules=",".join(firing.rule for firing in event.fired),
                ruleset_version=event.ruleset_version,
                hold_until=event.hold_until,
                decided_at=event.occurred_at,
                last_event_id=event.event_id,
            )
        )

    def _resolved(self, session: Session, event: RiskHoldResolved) -> None:
        row = session.get(RiskDecision, event.payment_id)
        if row is None or row.status not in HELD:
            return
        released = event.resolution is HoldResolution.RELEASED
        row.status = APPROVED if released else DECLINED
        row.resolved_by = event.resolved_by
        row.resolution_reason = event.reason
        row.last_event_id = event.event_id
