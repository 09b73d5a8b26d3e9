"""Payouts at the router: risk control first (approval, single and daily limits), then the
payee's channel; a failed payout gives its amount back to the day."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from events.identity import payout_id_for
from events.payout_records import PayoutFailed, PayoutRejected, PayoutRouted, RequestPayout
from events.topics import TopicCatalogue
from streams.risk.state import RiskState
from streams.routing.payouts import PayoutDesk
from tests.unit.samples import merchant_applied, merchant_reviewed

AT = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def desk_factory(rating: str | None = "D") -> PayoutDesk:
    risk = RiskState()
    risk.apply(merchant_applied("shop-0042"))
    if rating is not None:
        risk.apply(merchant_reviewed("shop-0042", rating=rating))
    return PayoutDesk(
        {}, risk, lambda: ["alipay", "wechat", "card"], ZoneInfo("Asia/Shanghai"), TopicCatalogue()
    )


def payout(amount_minor: int, key: str = "w1", **changes) -> RequestPayout:
    fields = dict(
        command_id=f"cmd-{key}",
        idempotency_key=key,
        issued_at=AT,
        merchant_id="shop-0042",
        channel="alipay",
        payee_account="shop42@example.com",
        payee_name="Han Meimei",
        amount_minor=amount_minor,
        currency="CNY",
        remark="earnings",
    )
    return RequestPayout(**{**fields, **changes})


def only(desk: PayoutDesk, command: RequestPayout):
    (out,) = desk.on_request(command, AT)
    assert out.key == b"shop-0042", "payout records are keyed by merchant"
    return out.record


def test_a_payout_within_its_limits_goes_to_the_payees_channel_explained():
    routed = only(desk_factory(), payout(150_000))
    assert isinstance(routed, PayoutRouted) and routed.channel == "alipay"
    # Rating D: 2,000.00 CNY at once, 5,000.00 CNY a day (the shipped rule set).
    assert routed.limits == {"single_payout": 200_000, "daily_payout": 500_000}
    assert routed.merchant_rating == "D" and routed.paid_today_minor == 0
    assert routed.payout_id == payout_id_for("shop-0042", "w1")


def test_the_single_and_daily_limits_refuse_with_their_names():
    desk = desk_factory()
    assert only(desk, payout(200_001)).reason_code == "limit.single_payout"
    for number in range(2):
        assert isinstance(only(desk, payout(200_000, key=f"d{number}")), PayoutRouted)
    refused = only(desk, payout(100_001, key="d9"))
    assert refused.reason_code == "limit.daily_payout" and "100000" in refused.detail
    assert isinstance(only(desk, payout(100_000, key="d10")), PayoutRouted)


def test_a_failed_payout_gives_its_amount_back_to_the_day():
    desk = desk_factory()
    first = only(desk, payout(200_000, key="a"))
    only(desk, payout(200_000, key="b"))
    desk.on_failed(
        PayoutFailed(
            event_id="f",
            payout_id=first.payout_id,
            occurred_at=AT,
            merchant_id="shop-0042",
            channel="alipay",
            amount_minor=200_000,
            currency="CNY",
            code="PAYEE_NOT_EXIST",
            detail="",
        )
    )
    assert only(desk, payout(300_000 - 100_000, key="c")).paid_today_minor == 200_000


def test_a_repeated_command_is_the_same_payout_and_routes_nothing_more():
    desk = desk_factory()
    only(desk, payout(1_000))
    assert desk.on_request(payout(1_000, command_id="again"), AT) == []


def test_the_next_business_day_starts_from_nothing():
    desk = desk_factory()
    only(desk, payout(200_000, key="a"))
    only(desk, payout(200_000, key="b"))
    tomorrow = datetime(2024, 5, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 May in Shanghai
    routed = only(desk, payout(200_000, key="c", issued_at=tomorrow))
    assert isinstance(routed, PayoutRouted) and routed.paid_today_minor == 0


@pytest.mark.parametrize(
    ("rating", "command", "code"),
    [
        (None, payout(100), "MERCHANT_NOT_APPROVED"),
        ("D", payout(100, channel="bank_x"), "UNKNOWN_CHANNEL"),
        ("D", payout(0), "AMOUNT_NOT_POSITIVE"),
    ],
)
def test_a_payout_that_cannot_go_is_refused_with_a_code(rating, command, code):
    refused = only(desk_factory(rating), command)
    assert isinstance(refused, PayoutRejected) and refused.reason_code == code
