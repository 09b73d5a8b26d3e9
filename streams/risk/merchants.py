"""Merchant risk profiles, folded from the merchants topic: onboarding status, rating, overrides.

A merchant takes payments only once a review approved it. Its rating picks the rule set's
default limits; its overrides sit on top of them.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from events.risk_records import (
    MerchantApplied,
    MerchantDecision,
    MerchantEvent,
    MerchantLimitsOverridden,
    MerchantReviewed,
)
from streams.risk.ruleset import RATINGS


class MerchantStatus(StrEnum):
    """Where a merchant is in onboarding."""

    APPLIED = "APPLIED"
    APPROVED = "APPROVED"
    REFUSED = "REFUSED"


@dataclasses.dataclass(frozen=True)
class MerchantProfile:
    """What risk control knows about one merchant."""

    merchant_id: str
    status: MerchantStatus
    rating: str | None = None
    overrides: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def may_take_payments(self) -> bool:
        """Only an approved merchant with a rating A-D takes payments."""
        return self.status is MerchantStatus.APPROVED and self.rating in RATINGS


def downgraded(rating: str) -> str:
    """The rating one step worse (D stays D; a rating outside A-D is treated as D)."""
    if rating not in RATINGS:
        return RATINGS[-1]
    return RATINGS[min(RATINGS.index(rating) + 1, len(RATINGS) - 1)]


def _reviewed(profile: MerchantProfile, event: MerchantReviewed) -> MerchantProfile:
    if event.decision is MerchantDecision.APPROVED:
        return dataclasses.replace(profile, status=MerchantStatus.APPROVED, rating=event.rating)
    return dataclasses.replace(profile, status=MerchantStatus.REFUSED)


def apply_merchant_event(profile: MerchantProfile | None, event: MerchantEvent) -> MerchantProfile:
    """The merchant's profile after ``event``; events before an application create it too."""
    current = profile or MerchantProfile(event.merchant_id, MerchantStatus.APPLIED)
    if isinstance(event, MerchantApplied):
        return current
    if isinstance(event, MerchantReviewed):
        return _reviewed(current, event)
    if isinstance(event, MerchantLimitsOverridden):
        return dataclasses.replace(current, overrides=dict(event.limits))
    return dataclasses.replace(current, rating=event.rating)
