"""The features a rule can name, with their types.

Rules are type-checked against these catalogues when a rule set is loaded, so a misspelt
feature or a comparison of a count with a string is refused with the line it is on. Every value
is an int, a bool or a str: amounts are integer minor units of the payment's currency, ratios are
integer basis points or percentages, never floats.
"""

from __future__ import annotations

from enum import StrEnum


class FeatureType(StrEnum):
    """The type of a feature's value."""

    INT = "int"
    BOOL = "bool"
    STR = "str"


FeatureCatalogue = dict[str, FeatureType]

# Dimensions a payment is counted under; each names one partition key of the feature store.
DIMENSIONS = ("user", "device", "ip", "account", "merchant")
# The other dimensions whose distinct values each dimension tracks ("accounts per device").
# A merchant sees too many users for a distinct count to be cheap, so it tracks none.
PARTNERS: dict[str, tuple[str, ...]] = {
    "user": ("device", "account"),
    "device": ("user", "account"),
    "ip": ("user", "account"),
    "account": ("user", "device"),
    "merchant": (),
}
# Sliding windows of the velocity features, by suffix, in seconds.
VELOCITY_WINDOWS = {"1m": 60, "1h": 3_600, "1d": 86_400}
# Windows of the distinct-partner features.
DISTINCT_WINDOWS = {"1h": 3_600, "1d": 86_400}
# Windows of the merchant-health features of the after-stage.
HEALTH_WINDOWS = {"1h": 3_600, "1d": 86_400, "30d": 30 * 86_400}


def dimension_features(dimension: str) -> FeatureCatalogue:
    """The features kept per value of ``dimension`` (``user.payments_1h`` and so on)."""
    names: FeatureCatalogue = {
        "present": FeatureType.BOOL,
        "first_seen": FeatureType.BOOL,
        "history_payments": FeatureType.INT,
        "usual_amount": FeatureType.INT,
        "amount_vs_usual_pct": FeatureType.INT,
        "daily_amount": FeatureType.INT,
    }
    for suffix in VELOCITY_WINDOWS:
        names[f"payments_{suffix}"] = FeatureType.INT
        names[f"amount_{suffix}"] = FeatureType.INT
    for partner in PARTNERS[dimension]:
        for suffix in DISTINCT_WINDOWS:
            names[f"distinct_{partner}s_{suffix}"] = FeatureType.INT
    return {f"{dimension}.{name}": kind for name, kind in names.items()}


def _payment_features() -> FeatureCatalogue:
    catalogue: FeatureCatalogue = {
        "amount": FeatureType.INT,
        "currency": FeatureType.STR,
        "method": FeatureType.STR,
        "region": FeatureType.STR,
        "requested_channel": FeatureType.STR,
        "merchant_id": FeatureType.STR,
        "merchant.rating": FeatureType.STR,
    }
    for dimension in DIMENSIONS:
        catalogue.update(dimension_features(dimension))
    return catalogue


def _health_features() -> FeatureCatalogue:
    catalogue: FeatureCatalogue = {"rating": FeatureType.STR}
    for suffix in HEALTH_WINDOWS:
        for counted in ("payments", "approved", "declines", "refunds", "chargebacks"):
            catalogue[f"{counted}_{suffix}"] = FeatureType.INT
    catalogue.update(
        {
            "decline_ratio_bp_1h": FeatureType.INT,
            "decline_spike_pct": FeatureType.INT,
            "refund_ratio_bp_30d": FeatureType.INT,
            "chargeback_ratio_bp_30d": FeatureType.INT,
            "volume_change_pct": FeatureType.INT,
        }
    )
    return catalogue


PAYMENT_FEATURES: FeatureCatalogue = _payment_features()
"""What the during-stage rules see about one payment."""

HEALTH_FEATURES: FeatureCatalogue = _health_features()
"""What the after-stage alerts see about one merchant."""
