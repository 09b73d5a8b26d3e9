"""After the payment: merchant health, edge-triggered alerts, and the rating feedback loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.identity import derived_id
from events.risk_records import (
    MerchantOutcome,
    MerchantRatingChanged,
    RiskAlert,
    RiskAssessed,
    RiskOutcome,
)
from events.topics import TopicCatalogue
from streams.engine.outgoing import Outgoing
from streams.risk.aftercare import HealthDesk
from streams.risk.assessment import assess, epoch_ms
from streams.risk.rule_file import parse_ruleset
from streams.risk.state import RiskState
from tests.unit.samples import merchant_applied, merchant_reviewed, payment_accepted

TOPICS = TopicCatalogue("t")
MERCHANT = "shop-0042"
START = datetime(2024, 4, 1, 2, 0, tzinfo=UTC)
NOW = datetime(2024, 4, 20, 9, 0, tzinfo=UTC)


class Merchant:
    """One merchant's outcomes fed to a health desk at consecutive offsets of its partition."""

    def __init__(self, rating: str = "A", state: RiskState | None = None) -> None:
        self.state = state or RiskState()
        self.state.apply(merchant_applied(MERCHANT))
        self.state.apply(merchant_reviewed(MERCHANT, rating))
        self.entries: dict = {}
        self.desk = HealthDesk(self.entries, self.state, TOPICS)
        self.offset = 0
        self.events = 0

    def outcome(self, kinds: list[str], at: datetime) -> MerchantOutcome:
        self.events += 1
        return MerchantOutcome(
            merchant_id=MERCHANT,
            payment_id=derived_id("payment", self.events),
            at_ms=epoch_ms(at),
            kinds=kinds,
            source_event_id=derived_id("event", self.events),
        )

    def feed(self, outcome: MerchantOutcome) -> list[Outgoing]:
        self.offset += 1
        return self.desk.on_outcome(outcome, self.offset, NOW)

    def approvals(self, count: int) -> list[Outgoing]:
        """``count`` approved payments, one every two hours: a steady, quiet shop."""
        outgoing: list[Outgoing] = []
        for number in range(count):
            at = START + timedelta(hours=2 * number)
            outgoing += self.feed(self.outcome(["payments", "approved"], at))
        return outgoing

    def health(self) -> dict:
        windows = self.entries[MERCHANT]["health"]
        return self.desk.features(MERCHANT, windows, epoch_ms(NOW))


def records(outgoing: list[Outgoing], kind: type) -> list:
    return [out.record for out in outgoing if isinstance(out.record, kind)]


def chargeback_at(merchant: Merchant, days_after_start: int) -> MerchantOutcome:
    return merchant.outcome(["chargebacks"], START + timedelta(days=days_after_start))


def test_climbing_chargebacks_raise_the_alert_once_and_downgrade_the_merchant():
    merchant = Merchant("A")
    assert merchant.approvals(120) == []

    first = merchant.feed(chargeback_at(merchant, 10))  # 1 in 120: 83 bp, under 1%
    second_outcome = chargeback_at(merchant, 11)
    second = merchant.feed(second_outcome)  # 2 in 120: 166 bp
    third = merchant.feed(chargeback_at(merchant, 11))  # still high: no new alert

    assert first == []
    assert third == []
    assert [(out.topic, out.key) for out in second] == [
        (TOPICS.alerts.name, MERCHANT.encode()),
        (TOPICS.merchants.name, MERCHANT.encode()),
    ]
    (alert,) = records(second, RiskAlert)
    assert alert.alert == "chargeback_ratio_high"
    assert alert.downgrade is True
    assert alert.inputs == {"approved_30d": 120, "chargeback_ratio_bp_30d": 166}
    assert alert.ruleset_version == merchant.state.ruleset.version
    assert alert.event_id == derived_id(
        MERCHANT, "chargeback_ratio_high", second_outcome.source_event_id
    )
    (change,) = records(second, MerchantRatingChanged)
    assert (change.previous_rating, change.rating) == ("A", "B")
    assert change.source == "alert:chargeback_ratio_high"
    assert "chargeback_ratio_high" in change.reason
    assert "chargeback_ratio_bp_30d=166" in change.reason
    assert "approved_30d=120" in change.reason


def test_downgrade_feeds_back_into_the_merchants_limits():
    merchant = Merchant("A")
    merchant.approvals(120)
    merchant.feed(chargeback_at(merchant, 10))
    (change,) = records(merchant.feed(chargeback_at(merchant, 11)), MerchantRatingChanged)
    # 15000.00 CNY: within an A-rated merchant's 50000.00, over a B-rated one's 10000.00.
    at = NOW + timedelta(minutes=1)
    large = payment_accepted(at=at, idempotency_key="order-large-1", amount_minor=1_500_000)

    def decide() -> RiskAssessed:
        profile = merchant.state.merchant(MERCHANT)
        return assess(large, profile, {}, merchant.state.ruleset, at)

    before = decide()
    merchant.state.apply(change)  # the worker reads its own rating change back
    after = decide()

    assert before.outcome is RiskOutcome.APPROVE
    assert before.merchant_rating == "A"
    assert after.outcome is RiskOutcome.REJECT
    assert after.merchant_rating == "B"
    (firing,) = after.fired
    assert firing.rule == "limit.single_payment"
    assert firing.inputs == {"amount": 1_500_000, "currency": "CNY", "limit": 1_000_000}


def test_redelivered_outcome_is_not_counted_twice():
    merchant = Merchant("A")
    merchant.approvals(120)
    chargeback = chargeback_at(merchant, 10)
    merchant.feed(chargeback)
    counted = merchant.offset

    # The same message again after a crash: at its own offset, not a new one.
    assert merchant.desk.on_outcome(chargeback, counted, NOW) == []
    assert merchant.desk.on_outcome(chargeback, counted - 5, NOW) == []

    health = merchant.health()
    assert health["chargebacks_30d"] == 1
    assert health["chargeback_ratio_bp_30d"] == 83


def test_alert_is_raised_again_only_after_it_stopped_holding():
    merchant = Merchant("B")
    merchant.approvals(120)
    merchant.feed(chargeback_at(merchant, 10))
    (first_change,) = records(merchant.feed(chargeback_at(merchant, 10)), MerchantRatingChanged)
    merchant.state.apply(first_change)
    # 120 more clean sales bring the ratio to 2 in 240 (83 bp): the alert stops holding.
    for number in range(120):
        at = START + timedelta(days=10, hours=number)
        assert merchant.feed(merchant.outcome(["payments", "approved"], at)) == []

    again = merchant.feed(chargeback_at(merchant, 16))  # 3 in 240: 125 bp, holding again
    later = merchant.feed(chargeback_at(merchant, 16))

    (alert,) = records(again, RiskAlert)
    assert alert.inputs == {"approved_30d": 240, "chargeback_ratio_bp_30d": 125}
    (second_change,) = records(again, MerchantRatingChanged)
    assert (second_change.previous_rating, second_change.rating) == ("C", "D")
    assert second_change.event_id != first_change.event_id
    assert later == []


@pytest.mark.parametrize(("rating", "next_rating"), [("A", "B"), ("B", "C"), ("C", "D")])
def test_downgrade_lowers_the_rating_one_step(rating, next_rating):
    merchant = Merchant(rating)
    merchant.approvals(100)
    (change,) = records(merchant.feed(chargeback_at(merchant, 9)), MerchantRatingChanged)
    assert (change.previous_rating, change.rating) == (rating, next_rating)


def test_d_rated_merchant_gets_the_alert_but_no_rating_change():
    merchant = Merchant("D")
    merchant.approvals(100)
    outgoing = merchant.feed(chargeback_at(merchant, 9))
    assert [alert.alert for alert in records(outgoing, RiskAlert)] == ["chargeback_ratio_high"]
    assert records(outgoing, MerchantRatingChanged) == []


def test_alert_without_downgrade_leaves_the_rating_alone():
    merchant = Merchant("A")
    merchant.approvals(100)
    outgoing: list[Outgoing] = []
    for number in range(10):
        at = START + timedelta(days=9, hours=number)
        outgoing += merchant.feed(merchant.outcome(["refunds"], at))
    (alert,) = records(outgoing, RiskAlert)
    assert alert.alert == "refund_ratio_high"
    assert alert.downgrade is False
    assert alert.inputs == {"approved_30d": 100, "refund_ratio_bp_30d": 1_000}
    assert records(outgoing, MerchantRatingChanged) == []


EARLY_CHARGEBACK_RULES = """\
version 4
alert early_chargebacks downgrade when chargebacks_1d >= 2 and rating != "D"
"""


def test_alerts_come_from_the_live_rule_set():
    state = RiskState(parse_ruleset(EARLY_CHARGEBACK_RULES))
    merchant = Merchant("C", state)
    assert merchant.feed(chargeback_at(merchant, 1)) == []
    outgoing = merchant.feed(chargeback_at(merchant, 1))
    (alert,) = records(outgoing, RiskAlert)
    assert alert.alert == "early_chargebacks"
    assert alert.inputs == {"chargebacks_1d": 2, "rating": "C"}
    assert alert.ruleset_version == 4
    (change,) = records(outgoing, MerchantRatingChanged)
    assert change.rating == "D"
