"""From an accepted payment to its explained risk decision: the pure steps of the risk stage.

The payment is fanned out to one feature request per dimension it carries (each lands in the
partition that owns that user, device, IP, account or merchant); the snapshots that come back
are assembled into one feature map, and the live rule set decides.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from events.identity import stage_event_id
from events.records import PaymentAccepted
from events.risk_records import (
    FeatureRequest,
    FeatureValues,
    RiskAssessed,
    RiskOutcome,
    RuleFiring,
)
from streams.risk.features import DIMENSIONS, PARTNERS, FeatureType, dimension_features
from streams.risk.merchants import MerchantProfile
from streams.risk.ruleset import FiredRule, RuleSet, evaluate

STAGE = "risk"
# RiskOutcome is declared from least to most severe.
SEVERITY = tuple(RiskOutcome)
NOT_APPROVED = "merchant.not_approved"
FEATURES_MISSING = "risk.features_missing"


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(moment.timestamp() * 1000)


def business_date(moment: datetime, zone: ZoneInfo) -> str:
    """The business day ``moment`` belongs to in ``zone``, as an ISO date."""
    return moment.astimezone(zone).date().isoformat()


def dimension_values(accepted: PaymentAccepted) -> dict[str, str]:
    """The dimensions the payment carries and their values, in catalogue order."""
    values = {
        "user": accepted.user_id,
        "device": accepted.device_id,
        "ip": accepted.client_ip,
        "account": accepted.account_fingerprint,
        "merchant": accepted.merchant_id,
    }
    return {dimension: value for dimension, value in values.items() if value}


def feature_key(dimension: str, value: str) -> bytes:
    """The Kafka key that puts every payment of one dimension value in one partition."""
    return f"{dimension}:{value}".encode()


def feature_requests(accepted: PaymentAccepted, zone: ZoneInfo) -> list[FeatureRequest]:
    """One request per dimension the payment carries."""
    values = dimension_values(accepted)
    at_ms, date = epoch_ms(accepted.occurred_at), business_date(accepted.occurred_at, zone)
    return [
        FeatureRequest(
            payment_id=accepted.payment_id,
            dimension=dimension,
            value=value,
            at_ms=at_ms,
            amount_minor=accepted.amount_minor,
            currency=accepted.currency,
            business_date=date,
            partners={p: values[p] for p in PARTNERS[dimension] if p in values},
        )
        for dimension, value in values.items()
    ]


def absent_features(dimension: str) -> FeatureValues:
    """What the rules see for a dimension the payment does not carry: false and zero."""
    return {
        name: 0 if kind == FeatureType.INT else False
        for name, kind in dimension_features(dimension).items()
    }


# Every dimension absent, in catalogue order: present ones then overwrite their own names.
_ALL_ABSENT = {
    name: value for dimension in DIMENSIONS for name, value in absent_features(dimension).items()
}


def payment_features(accepted: PaymentAccepted, profile: MerchantProfile | None) -> FeatureValues:
    """The payment's own features, before any dimension's."""
    return {
        "amount": accepted.amount_minor,
        "currency": accepted.currency,
        "method": str(accepted.method),
        "region": accepted.region or "",
        "requested_channel": accepted.requested_channel or "",
        "merchant_id": accepted.merchant_id,
        "merchant.rating": (profile.rating if profile else None) or "",
    }


def assemble_features(
    accepted: PaymentAccepted,
    profile: MerchantProfile | None,
    snapshots: Mapping[str, FeatureValues],
) -> FeatureValues:
    """Every feature of the catalogue: the payment's, then each dimension's snapshot."""
    features = payment_features(accepted, profile)
    features.update(_ALL_ABSENT)
    for dimension in DIMENSIONS:
        snapshot = snapshots.get(dimension)
        if snapshot is not None:
            names = _prefixed(dimension, tuple(snapshot))
            features.update(zip(names, snapshot.values(), strict=True))
            features[_PRESENT[dimension]] = True
    return features


_PRESENT = {dimension: f"{dimension}.present" for dimension in DIMENSIONS}


@functools.lru_cache(maxsize=256)
def _prefixed(dimension: str, names: tuple[str, ...]) -> tuple[str, ...]:
    # A snapshot's names come in a handful of layouts: each is prefixed once, not per payment.
    return tuple(f"{dimension}.{name}" for name in names)


def _firing(fired: FiredRule) -> RuleFiring:
    return RuleFiring(
        rule=fired.rule,
        outcome=RiskOutcome[fired.outcome.name],
        delay_seconds=fired.delay_seconds,
        inputs=dict(fired.inputs),
    )


def _built_in(rule: str, outcome: RiskOutcome, inputs: FeatureValues) -> RuleFiring:
    return RuleFiring(rule=rule, outcome=outcome, delay_seconds=0, inputs=inputs)


def decide_firings(
    features: FeatureValues,
    profile: MerchantProfile | None,
    ruleset: RuleSet,
    missing: tuple[str, ...],
) -> list[RuleFiring]:
    """Every check that fired: merchant onboarding, missing features, limits, rules."""
    if profile is None or not profile.may_take_payments:
        status = str(profile.status) if profile else "UNKNOWN"
        return [_built_in(NOT_APPROVED, RiskOutcome.REJECT, {"merchant.status": status})]
    limits = ruleset.limits_for(profile.rating or "", profile.overrides)
    firings = [_firing(fired) for fired in evaluate(ruleset, features, limits).fired]
    if missing:
        inputs: FeatureValues = {"missing": ",".join(missing)}
        firings.insert(0, _built_in(FEATURES_MISSING, RiskOutcome.REVIEW, inputs))
    return firings


def overall(firings: list[RuleFiring]) -> tuple[RiskOutcome, int]:
    """The most severe outcome fired (APPROVE if none) and, for DELAY, the longest delay."""
    outcome = max((f.outcome for f in firings), key=SEVERITY.index, default=RiskOutcome.APPROVE)
    delays = [f.delay_seconds for f in firings if f.outcome is RiskOutcome.DELAY]
    return outcome, max(delays) if outcome is RiskOutcome.DELAY else 0


def assess(
    accepted: PaymentAccepted,
    profile: MerchantProfile | None,
    snapshots: Mapping[str, FeatureValues],
    ruleset: RuleSet,
    now: datetime,
    missing: tuple[str, ...] = (),
) -> RiskAssessed:
    """The RiskAssessed event for ``accepted``: outcome, hold, rules fired and every feature."""
    features = assemble_features(accepted, profile, snapshots)
    firings = decide_firings(features, profile, ruleset, missing)
    outcome, delay = overall(firings)
    return RiskAssessed(
        event_id=stage_event_id(accepted.payment_id, STAGE),
        payment_id=accepted.payment_id,
        occurred_at=now,
        merchant_id=accepted.merchant_id,
        order_id=accepted.order_id,
        user_id=accepted.user_id,
        amount_minor=accepted.amount_minor,
        currency=accepted.currency,
        method=accepted.method,
        requested_channel=accepted.requested_channel,
        outcome=outcome,
        hold_until=now + timedelta(seconds=delay) if outcome is RiskOutcome.DELAY else None,
        ruleset_version=ruleset.version,
        ruleset_digest=ruleset.digest,
        merchant_rating=profile.rating if profile else None,
        limit_overrides=dict(profile.overrides) if profile else {},
        fired=firings,
        features=features,
    )
