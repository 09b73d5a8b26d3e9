"""The payment-channel read model: where each routed payment went and where it stands there.

Statuses: ROUTED (the channel is being asked), PENDING (the channel took it; its result comes
later), UNKNOWN (no clear answer yet: being settled by query), CAPTURED, FAILED, and
REFUNDED or PARTIALLY_REFUNDED once money went back. A payment no channel could take is
FAILED with the router's reason. Events arrive in order per payment; a redelivered copy finds
the row already in the state it leads to.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from events.records import AvroRecord, PaymentRefunded
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    PaymentCaptured,
    PaymentFailed,
    PaymentRouted,
)
from projections.models import ChannelRefund, PaymentChannel

ROUTED, CAPTURED, FAILED = "ROUTED", "CAPTURED", "FAILED"
REFUNDED, PARTIALLY_REFUNDED = "REFUNDED", "PARTIALLY_REFUNDED"
# Once a payment ended, a late attempt event (replayed after a crash) must not reopen it.
ENDED = frozenset({CAPTURED, FAILED, REFUNDED, PARTIALLY_REFUNDED})


class PaymentChannelProjection:
    """Applies routing, dispatch and refund events to the ``payment_channels`` table."""

    name = "payment-channels"

    def apply(self, session: Session, record: AvroRecord) -> None:
        """Apply one event; others are ignored."""
        if isinstance(record, PaymentRouted):
            self._routed(session, record)
            return
        row = session.get(PaymentChannel, getattr(record, "payment_id", ""))
        if row is None:
            return
        if isinstance(record, PaymentCaptured):
            self._captured(row, record)
        elif isinstance(record, PaymentRefunded):
            self._refunded(session, row, record)
        elif row.status not in ENDED:
            self._progressed(row, record)

    def _routed(self, session: Session, event: PaymentRouted) -> None:
        if session.get(PaymentChannel, event.payment_id) is not None:
            return  # the first routing stands, as it does for the dispatcher
        winner = next((c for c in event.candidates if c.channel == event.channel), None)
        session.add(
            PaymentChannel(
                payment_id=event.payment_id,
                merchant_id=event.merchant_id,
                channel=event.channel,
                routing_reason=event.reason_code,
                status=ROUTED if event.channel else FAILED,
                amount_minor=event.amount_minor,
                currency=event.currency,
                fee_minor=winner.fee_minor if winner else None,
                refunded_minor=0,
                failure=None if event.channel else event.reason,
                updated_at=event.occurred_at,
            )
        )

    def _captured(self, row: PaymentChannel, event: PaymentCaptured) -> None:
        if row.status == CAPTURED:
            return
        row.channel, row.channel_ref, row.fee_minor = (
            event.channel,
            event.channel_ref,
            event.fee_minor,
        )
        _moved(row, CAPTURED, event.occurred_at)

    def _refunded(self, session: Session, row: PaymentChannel, event: PaymentRefunded) -> None:
        if session.get(ChannelRefund, event.refund_id) is not None:
            return  # the dispatcher, replaying after a crash, reported this refund again
        session.add(
            ChannelRefund(
                refund_id=event.refund_id,
                payment_id=event.payment_id,
                channel=event.channel,
                channel_ref=event.channel_ref,
                amount_minor=event.amount_minor,
                currency=event.currency,
                refunded_at=event.occurred_at,
            )
        )
        row.refunded_minor = (row.refunded_minor or 0) + event.amount_minor
        whole = row.refunded_minor >= row.amount_minor
        _moved(row, REFUNDED if whole else PARTIALLY_REFUNDED, event.occurred_at)

    def _progressed(self, row: PaymentChannel, event: AvroRecord) -> None:
        if isinstance(event, ChannelAttemptPending):
            row.channel = event.channel
            _moved(row, event.status, event.occurred_at)
        elif isinstance(event, ChannelAttemptFailed) and event.next_channel:
            row.channel = event.next_channel
            _moved(row, ROUTED, event.occurred_at)
        elif isinstance(event, PaymentFailed):
            row.failure = f"{event.reason_code}: {event.detail}"
            _moved(row, FAILED, event.occurred_at)


def _moved(row: PaymentChannel, status: str, at: datetime) -> None:
    row.status = status
    row.updated_at = at
