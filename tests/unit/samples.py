"""Realistic records for unit tests; each test overrides what it is about."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from events.identity import derived_id
from events.records import AvroRecord, PaymentAccepted, PaymentMethod, RequestPayment
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureRequestBatch,
    MerchantApplied,
    MerchantDecision,
    MerchantLimitsOverridden,
    MerchantRatingChanged,
    MerchantReviewed,
)
from streams.validation import accept

ACCEPTED_AT = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def request_payment(**changes: Any) -> RequestPayment:
    """A valid 648-coin recharge paid with WeChat Pay, with ``changes`` applied."""
    request = RequestPayment(
        command_id="6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41",
        idempotency_key="order-0000042-a1b2c3d4",
        issued_at=datetime(2024, 5, 1, 11, 59, 59, 500000, tzinfo=UTC),
        merchant_id="shop-0042",
        order_id="ORD000000042",
        user_id="u004711",
        amount_minor=64800,
        currency="CNY",
        method=PaymentMethod.WECHAT_PAY,
        channel="wechat",
        description="648 coins",
        device_id="dev-00ab12cd34",
        client_ip="10.1.2.3",
        account_fingerprint="sha256:4f2a9c",
        region="CN",
        metadata={"sku": "sku-648"},
    )
    return dataclasses.replace(request, **changes)


def payment_accepted(at: datetime = ACCEPTED_AT, **changes: Any) -> PaymentAccepted:
    """The sample request, with ``changes`` applied, as validation accepts it at ``at``.

    The payment id derives from the merchant and idempotency key: give each payment of a test
    its own ``idempotency_key``.
    """
    return accept(request_payment(**changes), at)


def merchant_applied(merchant_id: str = "shop-0042", at: datetime = ACCEPTED_AT) -> MerchantApplied:
    """A stationery shop applies to take payments."""
    return MerchantApplied(
        event_id=derived_id(merchant_id, "applied"),
        merchant_id=merchant_id,
        occurred_at=at,
        legal_name=f"{merchant_id} Trading Co., Ltd.",
        business_category="5943",
        region="CN",
        contact_email=f"risk@{merchant_id}.example",
    )


def merchant_reviewed(
    merchant_id: str = "shop-0042",
    rating: str | None = "A",
    *,
    refused: bool = False,
    at: datetime = ACCEPTED_AT,
) -> MerchantReviewed:
    """The onboarding review: approved with ``rating``, or refused."""
    return MerchantReviewed(
        event_id=derived_id(merchant_id, "reviewed", "refused" if refused else str(rating)),
        merchant_id=merchant_id,
        occurred_at=at,
        decision=MerchantDecision.REFUSED if refused else MerchantDecision.APPROVED,
        rating=None if refused else rating,
        reviewer="onboarding:li.wei",
        reason="licence could not be verified" if refused else "licence and bank account verified",
    )


def merchant_limits_overridden(
    limits: dict[str, int], merchant_id: str = "shop-0042", at: datetime = ACCEPTED_AT
) -> MerchantLimitsOverridden:
    """The merchant's own limits, set by risk staff."""
    return MerchantLimitsOverridden(
        event_id=derived_id(merchant_id, "limits", *sorted(limits)),
        merchant_id=merchant_id,
        occurred_at=at,
        limits=dict(limits),
        set_by="risk:zhang.min",
        reason="agreed at onboarding",
    )


def merchant_rating_changed(
    previous: str | None, rating: str, merchant_id: str = "shop-0042", at: datetime = ACCEPTED_AT
) -> MerchantRatingChanged:
    """A person moved the merchant's rating."""
    return MerchantRatingChanged(
        event_id=derived_id(merchant_id, "rating", rating),
        merchant_id=merchant_id,
        occurred_at=at,
        previous_rating=previous,
        rating=rating,
        reason="quarterly review",
        source="risk:zhang.min",
    )


def feature_request(number: int) -> FeatureRequest:
    """Payment ``p-<number>`` counted under the user ``u<number>``."""
    return FeatureRequest(
        payment_id=f"p-{number}",
        dimension="user",
        value=f"u{number}",
        at_ms=1_714_566_645_000 + number,
        amount_minor=100 + number,
        currency="CNY",
        business_date="2024-05-01",
        partners={},
    )


def feature_release(number: int) -> FeatureRelease:
    """Payment ``p-<number>``'s amount taken back out of the user ``u<number>``'s daily total."""
    return FeatureRelease(
        payment_id=f"p-{number}",
        dimension="user",
        value=f"u{number}",
        business_date="2024-05-01",
        amount_minor=100 + number,
        currency="CNY",
    )


def request_bundle(records: Sequence[AvroRecord]) -> FeatureRequestBatch:
    """The bundle wrapper of feature requests, as a ``Bundling`` takes it."""
    return FeatureRequestBatch(requests=[r for r in records if isinstance(r, FeatureRequest)])
