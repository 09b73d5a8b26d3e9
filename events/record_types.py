"""Every record type carried on Kafka, by schema subject: what the codec decodes into."""

from __future__ import annotations

from events.records import (
    AvroRecord,
    ChargebackReceived,
    CommandDeduplicated,
    DeadLetter,
    PaymentAccepted,
    PaymentRefunded,
    PaymentRejected,
    RequestPayment,
)
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureSnapshot,
    MerchantApplied,
    MerchantLimitsOverridden,
    MerchantOutcome,
    MerchantRatingChanged,
    MerchantReviewed,
    ReviewDecision,
    RiskAlert,
    RiskAssessed,
    RiskHoldResolved,
    RuleSetPublished,
)

RECORD_TYPES: dict[str, type[AvroRecord]] = {
    cls.subject: cls
    for cls in (
        RequestPayment,
        PaymentAccepted,
        PaymentRejected,
        CommandDeduplicated,
        DeadLetter,
        PaymentRefunded,
        ChargebackReceived,
        MerchantApplied,
        MerchantReviewed,
        MerchantLimitsOverridden,
        MerchantRatingChanged,
        RuleSetPublished,
        RiskAssessed,
        RiskHoldResolved,
        ReviewDecision,
        RiskAlert,
        FeatureRequest,
        FeatureRelease,
        FeatureSnapshot,
        MerchantOutcome,
    )
}
