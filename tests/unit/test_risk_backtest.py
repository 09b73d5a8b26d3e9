"""Backtests: a candidate rule set re-decides the recorded decisions; nothing live changes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from events.records import PaymentAccepted
from events.risk_records import FeatureSnapshot, FeatureValues, RiskAssessed, RiskOutcome
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from streams.risk.assessment import assess, feature_requests
from streams.risk.backtest import Flip, backtest, redecide
from streams.risk.feature_store import FeatureDesk
from streams.risk.rule_file import parse_ruleset
from streams.risk.ruleset import RuleSet
from streams.risk.state import RiskState, default_ruleset
from tests.unit.samples import (
    merchant_applied,
    merchant_limits_overridden,
    merchant_reviewed,
    payment_accepted,
)

ZONE = ZoneInfo("Asia/Shanghai")
TOPICS = TopicCatalogue("t")
CODEC = EventCodec(ManifestSchemas())
T0 = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
APPROVE, REVIEW, REJECT = RiskOutcome.APPROVE, RiskOutcome.REVIEW, RiskOutcome.REJECT

NEW_DEVICE_RULE = (
    "rule new_device_large_payment reject when device.first_seen and "
    '((currency == "CNY" and amount >= 100_000) or (currency == "USD" and amount >= 15_000))'
)
A_SINGLE_PAYMENT_CNY = "limit A single_payment        CNY     50000.00"


def candidate(text: str, version: int = 2) -> RuleSet:
    """The shipped rules as a new version, changed by the caller."""
    return parse_ruleset(text.replace("version 1\n", f"version {version}\n", 1))


def with_new_device_rule() -> RuleSet:
    return candidate(default_ruleset().text + NEW_DEVICE_RULE + "\n")


def with_tighter_a_limit() -> RuleSet:
    text = default_ruleset().text
    assert A_SINGLE_PAYMENT_CNY in text
    return candidate(
        text.replace(A_SINGLE_PAYMENT_CNY, "limit A single_payment        CNY      1000.00")
    )


class Live:
    """The live risk stage under the shipped rules: every decision as it lands on the log."""

    def __init__(self) -> None:
        self.state = RiskState()
        for merchant in ("shop-0042", "shop-0077", "shop-0099"):
            self.state.apply(merchant_applied(merchant))
        self.state.apply(merchant_reviewed("shop-0042", "A"))
        self.state.apply(merchant_reviewed("shop-0077", "A"))
        # A furniture shop whose sales are large: its own limit, above its rating's.
        self.state.apply(merchant_limits_overridden({"single_payment.CNY": 3_000_000}, "shop-0077"))
        self.state.apply(merchant_reviewed("shop-0099", refused=True))
        self.store = FeatureDesk({}, TOPICS)
        self.offset = 0

    def decide(self, accepted: PaymentAccepted, missing: tuple[str, ...] = ()) -> RiskAssessed:
        snapshots: dict[str, FeatureValues] = {}
        for request in feature_requests(accepted, ZONE):
            self.offset += 1
            (out,) = self.store.on_request(request, self.offset)
            assert isinstance(out.record, FeatureSnapshot)
            if request.dimension not in missing:
                snapshots[request.dimension] = out.record.features
        profile = self.state.merchant(accepted.merchant_id)
        now = accepted.occurred_at + timedelta(milliseconds=40)
        assessed = assess(accepted, profile, snapshots, self.state.ruleset, now, missing)
        # Read back from the log, as a backtest reads it.
        recorded = CODEC.decode(CODEC.encode(assessed))
        assert isinstance(recorded, RiskAssessed)
        return recorded


def pay(minutes: int, key: str, amount: int, **changes) -> PaymentAccepted:
    return payment_accepted(
        at=T0 + timedelta(minutes=minutes), idempotency_key=key, amount_minor=amount, **changes
    )


def newcomer(name: str) -> dict[str, str]:
    """A user, device and card never seen before."""
    return {
        "user_id": f"u-{name}",
        "device_id": f"dev-{name}",
        "account_fingerprint": f"acc-{name}",
    }


@pytest.fixture(scope="module")
def history() -> dict[str, RiskAssessed]:
    """A morning of recorded decisions under the shipped rules (version 1)."""
    live = Live()
    payments = {
        "new-device-1500-cny": pay(0, "k-a", 150_000, **newcomer("a")),
        "new-device-1000-cny": pay(5, "k-b", 100_000, **newcomer("b")),
        "new-device-200-usd": pay(10, "k-c", 20_000, currency="USD", **newcomer("c")),
        "known-device-1500-cny": pay(70, "k-d", 150_000, **newcomer("a")),
        "new-device-68-cny": pay(80, "k-e", 6_800, **newcomer("e")),
        "refused-merchant": pay(90, "k-f", 150_000, merchant_id="shop-0099", **newcomer("f")),
        "blind-first-payment": pay(
            100, "k-g", 150_000, user_id="u-g", device_id=None, client_ip=None
        ),
        "own-limit-merchant": pay(110, "k-i", 150_000, merchant_id="shop-0077", **newcomer("a")),
    }
    return {name: live.decide(accepted) for name, accepted in payments.items()}


def test_recorded_history_is_what_the_shipped_rules_decided(history):
    outcomes = {name: assessed.outcome for name, assessed in history.items()}
    assert outcomes == {
        "new-device-1500-cny": APPROVE,
        "new-device-1000-cny": APPROVE,
        "new-device-200-usd": APPROVE,
        "known-device-1500-cny": APPROVE,
        "new-device-68-cny": APPROVE,
        "refused-merchant": REJECT,
        "blind-first-payment": REVIEW,
        "own-limit-merchant": APPROVE,
    }


def test_the_live_rule_set_re_decides_its_own_history_identically(history):
    report = backtest(history.values(), default_ruleset())
    assert report.flips == []
    assert report.before == report.after
    assert report.money == Counter()


def test_a_new_reject_rule_flips_exactly_the_matching_decisions(history):
    duplicate = history["new-device-1500-cny"]  # written twice after a crash
    report = backtest([*history.values(), duplicate], with_new_device_rule())

    assert report.payments == 8
    assert report.before == Counter({APPROVE: 6, REJECT: 1, REVIEW: 1})
    assert report.after == Counter({APPROVE: 3, REJECT: 4, REVIEW: 1})
    flipped = {flip.payment_id for flip in report.flips}
    assert flipped == {
        history[name].payment_id
        for name in ("new-device-1500-cny", "new-device-1000-cny", "new-device-200-usd")
    }
    first = report.flips[0]
    assert first == Flip(
        payment_id=history["new-device-1500-cny"].payment_id,
        merchant_id="shop-0042",
        amount_minor=150_000,
        currency="CNY",
        before=APPROVE,
        after=REJECT,
        rules_before=(),
        rules_after=("new_device_large_payment",),
    )
    assert report.money == Counter(
        {(APPROVE, REJECT, "CNY"): 250_000, (APPROVE, REJECT, "USD"): 20_000}
    )


def test_a_payment_at_a_merchant_not_approved_never_flips(history):
    refused = history["refused-merchant"]
    for ruleset in (with_new_device_rule(), with_tighter_a_limit(), parse_ruleset("version 9")):
        outcome, rules = redecide(refused, ruleset)
        assert (outcome, rules) == (REJECT, ["merchant.not_approved"])


def test_a_rule_set_without_rules_approves_everything_a_rule_had_stopped(history):
    report = backtest(history.values(), parse_ruleset("version 9"))
    assert report.after == Counter({APPROVE: 7, REJECT: 1})
    assert [(f.before, f.after, f.rules_before) for f in report.flips] == [
        (REVIEW, APPROVE, ("blind_first_payment",))
    ]


def test_tighter_rating_limits_reject_payments_the_old_limits_let_through(history):
    report = backtest(history.values(), with_tighter_a_limit())

    by_payment = {flip.payment_id: flip for flip in report.flips}
    assert set(by_payment) == {
        history["new-device-1500-cny"].payment_id,
        history["known-device-1500-cny"].payment_id,
        history["blind-first-payment"].payment_id,
    }
    flip = by_payment[history["known-device-1500-cny"].payment_id]
    assert (flip.before, flip.after, flip.rules_after) == (
        APPROVE,
        REJECT,
        ("limit.single_payment",),
    )
    # Exactly at the new limit is within it; a merchant's own limit still stands over its
    # rating's, as it did when the payment was decided.
    assert history["new-device-1000-cny"].payment_id not in by_payment
    assert history["own-limit-merchant"].limit_overrides == {"single_payment.CNY": 3_000_000}
    assert history["own-limit-merchant"].payment_id not in by_payment
    held = by_payment[history["blind-first-payment"].payment_id]
    assert (held.before, held.after) == (REVIEW, REJECT)
    assert report.money == Counter(
        {(APPROVE, REJECT, "CNY"): 300_000, (REVIEW, REJECT, "CNY"): 150_000}
    )


def test_a_decision_made_without_all_features_stays_held_under_any_candidate():
    live = Live()
    accepted = pay(0, "k-timeout", 6_800, **newcomer("t"))
    recorded = live.decide(accepted, missing=("ip",))
    assert recorded.outcome is REVIEW

    outcome, rules = redecide(recorded, parse_ruleset("version 9"))

    assert outcome is REVIEW
    assert rules == ["risk.features_missing"]
