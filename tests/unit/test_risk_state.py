"""What every worker knows: merchant profiles folded from their topic, and the live rule set."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

import pytest

from events.identity import derived_id
from events.risk_records import RiskAssessed, RiskOutcome, RuleSetPublished
from streams.risk.assessment import assess
from streams.risk.merchants import MerchantProfile, MerchantStatus, downgraded
from streams.risk.state import RiskState, default_ruleset
from tests.unit.samples import (
    merchant_applied,
    merchant_limits_overridden,
    merchant_rating_changed,
    merchant_reviewed,
    payment_accepted,
)

MERCHANT = "shop-0042"
T0 = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)

# Version 2 rejects a large payment from a device never seen before.
VERSION_2 = """\
version 2
limit A single_payment CNY 50000.00
rule large_first_device_payment reject when device.first_seen and amount >= 300_000
"""
# Version 3 misspells a feature: publishing it must not take risk control down.
VERSION_3_BROKEN = """\
version 3
limit A single_payment CNY 50000.00
rule large_first_device_payment reject when device.first_sen and amount >= 300_000
"""


def published(text: str, version: int) -> RuleSetPublished:
    return RuleSetPublished(
        event_id=derived_id("ruleset", version),
        occurred_at=T0,
        version=version,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        text=text,
        published_by="risk:zhang.min",
    )


def approved_state() -> RiskState:
    state = RiskState()
    state.apply(merchant_applied(MERCHANT))
    state.apply(merchant_reviewed(MERCHANT, "A"))
    return state


def decide(state: RiskState, amount: int = 350_000) -> RiskAssessed:
    """A first payment from a device never seen before, under the state's live rules."""
    accepted = payment_accepted(at=T0, amount_minor=amount)
    device = {"present": True, "first_seen": True, "payments_1m": 1}
    return assess(accepted, state.merchant(MERCHANT), {"device": device}, state.ruleset, T0)


# --- rule sets --------------------------------------------------------------------------------


def test_the_shipped_rule_set_is_live_until_a_version_is_published():
    state = approved_state()
    assessed = decide(state)
    assert state.ruleset == default_ruleset()
    assert (assessed.ruleset_version, assessed.ruleset_digest) == (1, default_ruleset().digest)


def test_published_version_goes_live_and_decisions_record_it():
    state = approved_state()
    assert decide(state).outcome is RiskOutcome.APPROVE

    state.apply(published(VERSION_2, 2))

    assessed = decide(state)
    assert assessed.ruleset_version == 2
    assert assessed.ruleset_digest == hashlib.sha256(VERSION_2.encode()).hexdigest()
    assert assessed.outcome is RiskOutcome.REJECT
    assert [firing.rule for firing in assessed.fired] == ["large_first_device_payment"]
    assert state.published[2] == state.ruleset


def test_invalid_published_text_is_ignored_and_the_previous_version_stays_live(caplog):
    state = approved_state()
    state.apply(published(VERSION_2, 2))

    with caplog.at_level(logging.ERROR, logger="streams.risk.state"):
        state.apply(published(VERSION_3_BROKEN, 3))

    assert state.ruleset.version == 2
    assert 3 not in state.published
    assessed = decide(state)
    assert assessed.ruleset_version == 2
    assert [firing.rule for firing in assessed.fired] == ["large_first_device_payment"]
    (record,) = caplog.records
    assert "version 3" in record.getMessage()
    assert "device.first_sen" in record.getMessage()


def test_an_invalid_first_publication_keeps_the_shipped_rules():
    state = approved_state()
    state.apply(published(VERSION_3_BROKEN, 3))
    assert state.ruleset == default_ruleset()


def test_each_worker_folding_the_same_log_ends_on_the_same_rule_set():
    log = [published(VERSION_2, 2), published(VERSION_3_BROKEN, 3)]
    workers = [RiskState(), RiskState()]
    for worker in workers:
        for record in log:
            worker.apply(record)
    assert workers[0].ruleset.digest == workers[1].ruleset.digest
    assert workers[0].ruleset.version == 2


# --- merchants --------------------------------------------------------------------------------


def test_merchant_never_seen_has_no_profile():
    assert RiskState().merchant("shop-unknown") is None


def test_application_alone_does_not_let_a_merchant_take_payments():
    state = RiskState()
    state.apply(merchant_applied(MERCHANT))
    assert state.merchant(MERCHANT) == MerchantProfile(MERCHANT, MerchantStatus.APPLIED)
    profile = state.merchant(MERCHANT)
    assert profile is not None
    assert not profile.may_take_payments


def test_approval_gives_the_rating_and_refusal_takes_payments_away():
    state = approved_state()
    profile = state.merchant(MERCHANT)
    assert profile is not None
    assert (profile.status, profile.rating, profile.may_take_payments) == (
        MerchantStatus.APPROVED,
        "A",
        True,
    )

    state.apply(merchant_reviewed(MERCHANT, refused=True, at=T0 + timedelta(days=30)))

    profile = state.merchant(MERCHANT)
    assert profile is not None
    assert profile.status is MerchantStatus.REFUSED
    assert not profile.may_take_payments
    assessed = decide(state)
    assert assessed.fired[0].inputs == {"merchant.status": "REFUSED"}


def test_a_review_read_before_its_application_still_creates_the_profile():
    state = RiskState()
    state.apply(merchant_reviewed(MERCHANT, "B"))
    state.apply(merchant_applied(MERCHANT))  # the application does not undo the approval
    profile = state.merchant(MERCHANT)
    assert profile is not None
    assert (profile.status, profile.rating) == (MerchantStatus.APPROVED, "B")


def test_rating_change_moves_the_limits_a_payment_is_held_to():
    state = approved_state()
    # 15000.00 CNY: under rating A's single-payment limit, over rating B's.
    assert decide(state, amount=1_500_000).outcome is RiskOutcome.APPROVE

    state.apply(merchant_rating_changed("A", "B"))

    assessed = decide(state, amount=1_500_000)
    assert assessed.merchant_rating == "B"
    assert assessed.outcome is RiskOutcome.REJECT
    assert assessed.fired[0].inputs["limit"] == 1_000_000


def test_a_new_override_replaces_the_previous_one_whole():
    state = approved_state()
    state.apply(merchant_limits_overridden({"single_payment.CNY": 100_000, "user_payments_1h": 5}))
    state.apply(merchant_limits_overridden({"single_payment.CNY": 8_000_000}))

    profile = state.merchant(MERCHANT)
    assert profile is not None
    assert profile.overrides == {"single_payment.CNY": 8_000_000}
    # 60000.00 CNY: over rating A's 50000.00, within the merchant's own 80000.00.
    assessed = decide(state, amount=6_000_000)
    assert assessed.outcome is RiskOutcome.APPROVE
    assert assessed.limit_overrides == {"single_payment.CNY": 8_000_000}
    assert state.ruleset.limits_for("A", profile.overrides)["user_payments_1h"] == 100


def test_records_of_other_topics_change_nothing():
    state = approved_state()
    before = dict(state.merchants), state.ruleset
    state.apply(payment_accepted())
    assert (dict(state.merchants), state.ruleset) == before


@pytest.mark.parametrize(("rating", "worse"), [("A", "B"), ("B", "C"), ("C", "D"), ("D", "D")])
def test_downgraded_is_one_step_worse_and_d_is_the_floor(rating, worse):
    assert downgraded(rating) == worse
