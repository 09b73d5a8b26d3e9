"""The payment-status read model: the current state of every payment, from the log."""

from __future__ import annotations

from sqlalchemy.orm import Session

from events.records import (
    AvroRecord,
    PaymentAccepted,
    PaymentRejected,
)
from projections.models import PaymentStatus

ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"


class PaymentStatusProjection:
    """Applies payment events to the ``payment_status`` table."""

    name = "payment-status"

    def apply(self, session: Session, record: AvroRecord) -> None:
        """Apply one event; others (a CommandDeduplicated changes nothing) are ignored."""
        if isinstance(record, PaymentAccepted):
            self._decided(session, record, ACCEPTED, None, None)
        elif isinstance(record, PaymentRejected):
            self._decided(session, record, REJECTED, str(record.reason), record.detail)

    def _decided(
        self,
        session: Session,
        event: PaymentAccepted | PaymentRejected,
        status: str,
        reason: str | None,
        detail: str | None,
    ) -> None:
        row = session.get(PaymentStatus, event.payment_id)
        if row is None:
            row = PaymentStatus(payment_id=event.payment_id)
            session.add(row)
        elif row.last_event_id == event.event_id:
            return  # a redelivered copy of the event already applied
        row.merchant_id = event.merchant_id
        row.order_id = event.order_id
        row.user_id = event.user_id
        row.idempotency_key = event.idempotency_key
        row.command_id = event.command_id
        row.amount_minor = event.amount_minor
        row.currency = event.currency
        row.status = status
        row.reason = reason
        row.detail = detail
        row.updated_at = event.occurred_at
        row.last_event_id = event.event_id
