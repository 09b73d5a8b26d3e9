"""``RiskClient``: how operators and tools publish risk-control facts and commands (asyncio).

Merchant onboarding, limit overrides and rating changes go to the merchants topic; rule-set
versions to the rule-set topic; reviewers' decisions to the review topic; refunds and
chargebacks (until the channel adapters publish them) to the payment log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from events.identity import derived_id
from events.money import Money
from events.publisher import RecordPublisher
from events.records import ChargebackReceived, PaymentRefunded, utc_now
from events.risk_records import (
    MerchantApplied,
    MerchantDecision,
    MerchantEvent,
    MerchantLimitsOverridden,
    MerchantRatingChanged,
    MerchantReviewed,
    ReviewDecision,
    ReviewVerdict,
    RuleSetPublished,
)

RULESET_KEY = b"ruleset"


class RiskClient(RecordPublisher):
    """Publishes risk-control records; each call returns once all in-sync replicas have it."""

    async def apply_merchant(
        self, merchant_id: str, legal_name: str, category: str, region: str | None = None
    ) -> None:
        """A merchant's application: it cannot take payments until approved."""
        await self._merchant_event(
            MerchantApplied,
            merchant_id,
            legal_name=legal_name,
            business_category=category,
            region=region,
        )

    async def review_merchant(
        self, merchant_id: str, rating: str | None, reviewer: str, reason: str
    ) -> None:
        """End the onboarding review: approved with ``rating``, or refused when it is None."""
        decision = MerchantDecision.APPROVED if rating else MerchantDecision.REFUSED
        await self._merchant_event(
            MerchantReviewed,
            merchant_id,
            decision=decision,
            rating=rating,
            reviewer=reviewer,
            reason=reason,
        )

    async def override_limits(
        self, merchant_id: str, limits: dict[str, int], set_by: str, reason: str
    ) -> None:
        """Replace the merchant's own limits (keys as in the rule file: 'single_payment.CNY')."""
        await self._merchant_event(
            MerchantLimitsOverridden,
            merchant_id,
            limits=limits,
            set_by=set_by,
            reason=reason,
        )

    async def change_rating(
        self, merchant_id: str, previous: str | None, rating: str, reason: str, source: str
    ) -> None:
        """Move the merchant to another rating."""
        await self._merchant_event(
            MerchantRatingChanged,
            merchant_id,
            previous_rating=previous,
            rating=rating,
            reason=reason,
            source=source,
        )

    async def publish_ruleset(self, version: int, digest: str, text: str, by: str) -> None:
        """Make a rule-set version live on every worker."""
        record = RuleSetPublished(
            event_id=derived_id("ruleset", version, digest),
            occurred_at=utc_now(),
            version=version,
            digest=digest,
            text=text,
            published_by=by,
        )
        await self.publish(self.topics.rulesets.name, RULESET_KEY, record)

    async def review_payment(
        self, payment_id: str, approve: bool, reviewer: str, reason: str
    ) -> str:
        """Release (``approve``) or reject a held payment; returns the command id."""
        command = ReviewDecision(
            command_id=str(uuid.uuid4()),
            payment_id=payment_id,
            issued_at=utc_now(),
            verdict=ReviewVerdict.APPROVE if approve else ReviewVerdict.REJECT,
            reviewer=reviewer,
            reason=reason,
        )
        await self.publish(self.topics.reviews.name, payment_id.encode(), command)
        return command.command_id

    async def record_refund(
        self, payment_id: str, merchant_id: str, refund_id: str, amount: Money
    ) -> None:
        """A refund of (part of) a payment went back to the user."""
        record = PaymentRefunded(
            event_id=derived_id(payment_id, "refund", refund_id),
            payment_id=payment_id,
            occurred_at=utc_now(),
            merchant_id=merchant_id,
            refund_id=refund_id,
            amount_minor=amount.amount_minor,
            currency=amount.currency,
        )
        await self.publish(self.topics.events.name, payment_id.encode(), record)

    async def record_chargeback(
        self,
        payment_id: str,
        merchant_id: str,
        chargeback_id: str,
        amount: Money,
        reason_code: str,
        at: datetime | None = None,
    ) -> None:
        """The user's bank took a payment back from the merchant."""
        record = ChargebackReceived(
            event_id=derived_id(payment_id, "chargeback", chargeback_id),
            payment_id=payment_id,
            occurred_at=at or utc_now(),
            merchant_id=merchant_id,
            chargeback_id=chargeback_id,
            amount_minor=amount.amount_minor,
            currency=amount.currency,
            reason_code=reason_code,
        )
        await self.publish(self.topics.events.name, payment_id.encode(), record)

    async def _merchant_event(
        self, kind: type[MerchantEvent], merchant_id: str, **fields: Any
    ) -> None:
        """Publish a merchant event with a fresh id, stamped now."""
        record = kind(
            event_id=str(uuid.uuid4()), merchant_id=merchant_id, occurred_at=utc_now(), **fields
        )
        await self.publish(self.topics.merchants.name, merchant_id.encode(), record)
