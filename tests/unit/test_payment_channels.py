"""The payment-channel read model over SQLite: routed, settled, refunded, each counted once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from events.records import AvroRecord, PaymentMethod, PaymentRefunded
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    PaymentCaptured,
    PaymentFailed,
    PaymentRouted,
    RouteCandidate,
)
from projections.database import open_database
from projections.models import PaymentChannel
from projections.payment_channels import PaymentChannelProjection

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BASE = {"payment_id": "pay-1", "occurred_at": AT, "merchant_id": "shop-1"}


def routed(channel: str | None = "card_b") -> PaymentRouted:
    candidate = RouteCandidate(
        channel="card_b",
        fee_minor=850,
        success_rate_bp=9_500,
        latency_ms=40,
        eliminated=None,
        note="",
    )
    return PaymentRouted(
        **BASE,
        event_id="e-routed",
        amount_minor=50_000,
        currency="CNY",
        method=PaymentMethod.CARD,
        channel=channel,
        fallbacks=["card"],
        reason_code="SUCCESS_RATE" if channel else "NO_CHANNEL",
        reason="cheapest in band" if channel else "no channel serves CARD in CNY",
        policy_version=1,
        candidates=[candidate],
    )


def captured(channel: str = "card") -> PaymentCaptured:
    return PaymentCaptured(
        **BASE,
        event_id="e-captured",
        channel=channel,
        channel_ref="pi_1",
        amount_minor=50_000,
        currency="CNY",
        fee_minor=930,
        attempt=2,
        settled_by="reply",
    )


def refunded(refund_id: str, amount: int) -> PaymentRefunded:
    return PaymentRefunded(
        **BASE, event_id=f"e-{refund_id}", refund_id=refund_id, amount_minor=amount, currency="CNY"
    )


def projected(*records: AvroRecord) -> PaymentChannel:
    engine = open_database("sqlite://")
    projection = PaymentChannelProjection()
    with Session(engine) as session:
        for record in records:
            projection.apply(session, record)
            session.flush()
        row = session.get(PaymentChannel, "pay-1")
        assert row is not None
        session.expunge(row)
        return row


def test_a_payment_moves_to_its_fallback_and_is_captured_there_at_its_fee():
    failed_over = ChannelAttemptFailed(
        **BASE,
        event_id="e-f",
        channel="card_b",
        attempt=1,
        code="UNREACHABLE",
        error_class="RETRYABLE",
        message="",
        latency_ms=3,
        next_channel="card",
    )
    row = projected(routed(), failed_over, captured())
    assert (row.status, row.channel, row.fee_minor, row.routing_reason) == (
        "CAPTURED",
        "card",
        930,
        "SUCCESS_RATE",
    )


def test_an_unclear_attempt_shows_unknown_until_settled():
    pending = ChannelAttemptPending(
        **BASE,
        event_id="e-p",
        channel="card_b",
        attempt=1,
        status="UNKNOWN",
        code="TIMEOUT",
        detail="",
    )
    assert projected(routed(), pending).status == "UNKNOWN"
    assert projected(routed(), pending, captured("card_b")).status == "CAPTURED"


def test_partial_refunds_add_up_and_a_replayed_one_counts_once():
    row = projected(routed(), captured(), refunded("r1", 20_000), refunded("r1", 20_000))
    assert (row.status, row.refunded_minor) == ("PARTIALLY_REFUNDED", 20_000)
    row = projected(routed(), captured(), refunded("r1", 20_000), refunded("r2", 30_000))
    assert (row.status, row.refunded_minor) == ("REFUNDED", 50_000)


def test_an_ended_payment_is_not_reopened_by_a_late_event():
    late = ChannelAttemptPending(
        **BASE, event_id="e-late", channel="card", attempt=1, status="PENDING", code=None, detail=""
    )
    assert projected(routed(), captured(), late).status == "CAPTURED"


def test_an_unroutable_payment_is_failed_with_the_routers_reason():
    row = projected(routed(channel=None))
    assert row.status == "FAILED" and "no channel" in (row.failure or "")
    failed = PaymentFailed(
        **BASE,
        event_id="e-x",
        amount_minor=50_000,
        currency="CNY",
        reason_code="DECLINED",
        detail="card: insufficient_funds",
        channels_tried=["card_b"],
    )
    assert projected(routed(), failed).failure == "DECLINED: card: insufficient_funds"
