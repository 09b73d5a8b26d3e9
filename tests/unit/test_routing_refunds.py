"""Refunds at the router: only against captured money, never above what is left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.identity import refund_id_for
from events.records import PaymentRefunded
from events.refund_records import RefundFailed, RefundRejected, RefundRouted, RequestRefund
from events.routing_records import PaymentCaptured
from events.topics import TopicCatalogue
from streams.routing.refunds import RefundDesk

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def desk_factory(captured_minor: int | None = 10_000) -> RefundDesk:
    desk = RefundDesk({}, TopicCatalogue("unit"))
    if captured_minor is not None:
        desk.on_captured(
            PaymentCaptured(
                event_id="c",
                payment_id="pay-1",
                occurred_at=AT,
                merchant_id="shop-1",
                channel="wechat",
                channel_ref="wx-1",
                amount_minor=captured_minor,
                currency="CNY",
                fee_minor=60,
                attempt=1,
                settled_by="notification",
            )
        )
    return desk


def refund(amount_minor: int, key: str = "r1", **changes) -> RequestRefund:
    fields = dict(
        command_id=f"cmd-{key}",
        idempotency_key=key,
        issued_at=AT,
        merchant_id="shop-1",
        payment_id="pay-1",
        amount_minor=amount_minor,
        currency="CNY",
        reason="customer asked",
    )
    return RequestRefund(**{**fields, **changes})


def only(desk: RefundDesk, command: RequestRefund):
    (out,) = desk.on_request(command, AT)
    return out.record


def test_a_full_refund_goes_back_to_the_channel_that_captured():
    routed = only(desk_factory(), refund(10_000))
    assert isinstance(routed, RefundRouted)
    assert routed.channel == "wechat" and routed.refundable_minor == 10_000
    assert routed.refund_id == refund_id_for("shop-1", "r1")


def test_partial_refunds_add_up_to_the_capture_and_no_further():
    desk = desk_factory()
    for number, amount in enumerate((3_000, 3_000, 4_000)):
        assert isinstance(only(desk, refund(amount, key=f"r{number}")), RefundRouted)
    over = only(desk, refund(1, key="r9"))
    assert isinstance(over, RefundRejected) and over.reason_code == "OVER_REFUNDABLE"


def test_a_refund_above_what_is_left_is_refused_with_what_is_left():
    desk = desk_factory()
    only(desk, refund(6_000, key="a"))
    over = only(desk, refund(4_001, key="b"))
    assert over.reason_code == "OVER_REFUNDABLE" and "4000" in over.detail


def test_a_repeated_command_is_the_same_refund_and_routes_nothing_more():
    desk = desk_factory()
    only(desk, refund(6_000))
    assert desk.on_request(refund(6_000, command_id="cmd-again"), AT) == []
    assert isinstance(only(desk, refund(4_000, key="other")), RefundRouted)


def test_a_failed_refund_gives_its_amount_back_and_a_done_one_keeps_it():
    desk = desk_factory()
    first = only(desk, refund(10_000, key="a"))
    failed = dict(event_id="f", payment_id="pay-1", occurred_at=AT, merchant_id="shop-1")
    desk.on_failed(
        RefundFailed(
            **failed,
            refund_id=first.refund_id,
            channel="wechat",
            amount_minor=10_000,
            currency="CNY",
            code="NOT_ENOUGH",
            detail="merchant balance",
        )
    )
    second = only(desk, refund(10_000, key="b"))
    assert isinstance(second, RefundRouted)
    desk.on_refunded(
        PaymentRefunded(**failed, refund_id=second.refund_id, amount_minor=10_000, currency="CNY")
    )
    assert only(desk, refund(1, key="c")).reason_code == "OVER_REFUNDABLE"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (refund(100, merchant_id="shop-2"), "MERCHANT_MISMATCH"),
        (refund(100, currency="USD"), "CURRENCY_MISMATCH"),
        (refund(0), "AMOUNT_NOT_POSITIVE"),
        (refund(-5), "AMOUNT_NOT_POSITIVE"),
    ],
)
def test_a_refund_that_does_not_fit_its_payment_is_refused_with_a_code(command, code):
    rejected = only(desk_factory(), command)
    assert isinstance(rejected, RefundRejected) and rejected.reason_code == code


def test_a_payment_never_captured_cannot_be_refunded():
    rejected = only(desk_factory(captured_minor=None), refund(100))
    assert rejected.reason_code == "NOT_CAPTURED"
