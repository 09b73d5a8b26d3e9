"""Typed records of risk control: merchant onboarding, rule sets, the risk processor's decisions,
holds and reviews, and the feature store's internal messages.

Feature values are ints, bools or strs (an Avro union), never floats: amounts are minor units,
ratios basis points.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from events.records import AvroRecord, PaymentMethod

FeatureValue = int | bool | str
FeatureValues = dict[str, FeatureValue]


class RiskOutcome(StrEnum):
    """What the risk processor decided; REVIEW and DELAY hold the payment."""

    APPROVE = "APPROVE"
    DELAY = "DELAY"
    REVIEW = "REVIEW"
    REJECT = "REJECT"


class MerchantDecision(StrEnum):
    """The end of an onboarding review."""

    APPROVED = "APPROVED"
    REFUSED = "REFUSED"


class ReviewVerdict(StrEnum):
    """A reviewer's word on a held payment."""

    APPROVE = "APPROVE"
    REJECT = "REJECT"


class HoldResolution(StrEnum):
    """How a held payment left its hold."""

    RELEASED = "RELEASED"
    REJECTED = "REJECTED"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MerchantApplied(AvroRecord):
    """A merchant applied to take payments; it cannot until a review approves it."""

    subject: ClassVar[str] = "paystream.merchants.MerchantApplied"

    event_id: str
    merchant_id: str
    occurred_at: datetime
    legal_name: str
    business_category: str
    region: str | None = None
    contact_email: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MerchantReviewed(AvroRecord):
    """An onboarding review ended: approved with a risk rating (A best, D worst), or refused."""

    subject: ClassVar[str] = "paystream.merchants.MerchantReviewed"

    event_id: str
    merchant_id: str
    occurred_at: datetime
    decision: MerchantDecision
    rating: str | None
    reviewer: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MerchantLimitsOverridden(AvroRecord):
    """A merchant's own limits, replacing any earlier override; unset keys keep the rating's."""

    subject: ClassVar[str] = "paystream.merchants.MerchantLimitsOverridden"

    event_id: str
    merchant_id: str
    occurred_at: datetime
    limits: dict[str, int]
    set_by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MerchantRatingChanged(AvroRecord):
    """A merchant's risk rating moved, by a person or by the post-transaction analysis."""

    subject: ClassVar[str] = "paystream.merchants.MerchantRatingChanged"

    event_id: str
    merchant_id: str
    occurred_at: datetime
    previous_rating: str | None
    rating: str
    reason: str
    source: str


MerchantEvent = (
    MerchantApplied | MerchantReviewed | MerchantLimitsOverridden | MerchantRatingChanged
)
"""Everything the merchants topic carries."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RuleSetPublished(AvroRecord):
    """A rule-set version went live; running workers switch to it without a restart."""

    subject: ClassVar[str] = "paystream.risk.RuleSetPublished"

    event_id: str
    occurred_at: datetime
    version: int
    digest: str
    text: str
    published_by: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RuleFiring(AvroRecord):
    """One rule that fired, with the values of the features it read."""

    subject: ClassVar[str] = "paystream.risk.RuleFiring"

    rule: str
    outcome: RiskOutcome
    delay_seconds: int
    inputs: FeatureValues


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RiskAssessed(AvroRecord):
    """The risk processor's decision on a payment, explained: rule set, rules fired, features."""

    subject: ClassVar[str] = "paystream.payments.RiskAssessed"
    # On the wire ``features`` is split by type into these too (v2); the class keeps one map.
    folded_fields: ClassVar[tuple[str, ...]] = ("feature_counts", "feature_flags")

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    order_id: str
    user_id: str
    amount_minor: int
    currency: str
    method: PaymentMethod
    requested_channel: str | None
    outcome: RiskOutcome
    hold_until: datetime | None
    ruleset_version: int
    ruleset_digest: str
    merchant_rating: str | None
    limit_overrides: dict[str, int]
    fired: list[RuleFiring]
    features: FeatureValues

    def to_avro(self) -> dict[str, Any]:
        """The record as the dict fastavro writes, nested firings included."""
        datum = super(RiskAssessed, self).to_avro()
        datum["fired"] = [firing.to_avro() for firing in self.fired]
        counts, flags, labels = split_values(self.features)
        datum.update(features=labels, feature_counts=counts, feature_flags=flags)
        return datum

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """Build the record, nested firings included, from fastavro's dict."""
        record = super(RiskAssessed, cls).from_avro(datum)
        firings = [RuleFiring.from_avro(firing) for firing in datum["fired"]]
        # Read under v1, the counts and flags are empty and ``features`` holds every value.
        features = {**datum["features"], **datum["feature_counts"], **datum["feature_flags"]}
        return dataclasses.replace(record, fired=firings, features=features)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RiskHoldResolved(AvroRecord):
    """A held payment was released or rejected: by a reviewer, a delay running out, a signal."""

    subject: ClassVar[str] = "paystream.payments.RiskHoldResolved"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    amount_minor: int
    currency: str
    hold: RiskOutcome
    resolution: HoldResolution
    resolved_by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReviewDecision(AvroRecord):
    """A command: release or reject a held payment."""

    subject: ClassVar[str] = "paystream.commands.ReviewDecision"

    command_id: str
    payment_id: str
    issued_at: datetime
    verdict: ReviewVerdict
    reviewer: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RiskAlert(AvroRecord):
    """The post-transaction analysis saw something about a merchant that people must look at."""

    subject: ClassVar[str] = "paystream.risk.RiskAlert"

    event_id: str
    occurred_at: datetime
    merchant_id: str
    alert: str
    downgrade: bool
    inputs: FeatureValues
    ruleset_version: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRequest(AvroRecord):
    """Internal: count a payment under one dimension value (keyed by '<dimension>:<value>')."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureRequest"

    payment_id: str
    dimension: str
    value: str
    at_ms: int
    amount_minor: int
    currency: str
    business_date: str
    partners: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRelease(AvroRecord):
    """Internal: a rejected payment's amount leaves a dimension value's daily total."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureRelease"

    payment_id: str
    dimension: str
    value: str
    business_date: str
    amount_minor: int
    currency: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSnapshot(AvroRecord):
    """Internal: one dimension's features of a payment, back to the payment's partition."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureSnapshot"

    payment_id: str
    dimension: str
    features: FeatureValues


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MerchantOutcome(AvroRecord):
    """Internal: what happened to one of a merchant's payments, for its health counters."""

    subject: ClassVar[str] = "paystream.risk.internal.MerchantOutcome"

    merchant_id: str
    payment_id: str
    at_ms: int
    kinds: list[str]
    source_event_id: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRequestBatch(AvroRecord):
    """Internal: the feature requests of one processed batch bound for one feature partition."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureRequestBatch"

    requests: list[FeatureRequest]

    def to_avro(self) -> dict[str, Any]:
        """The batch as the dict fastavro writes (the requests have no enums to convert)."""
        return {"requests": [_request_datum(request) for request in self.requests]}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """Build the batch from fastavro's dict."""
        return cls(requests=[FeatureRequest(**request) for request in datum["requests"]])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSnapshotBatch(AvroRecord):
    """Internal: the feature snapshots of one processed batch bound for one case partition.

    On the wire each snapshot's values are split by type into plain maps, which fastavro
    handles several times faster than the map of unions a single ``FeatureSnapshot`` carries.
    """

    subject: ClassVar[str] = "paystream.risk.internal.FeatureSnapshotBatch"

    snapshots: list[FeatureSnapshot]

    def to_avro(self) -> dict[str, Any]:
        """The batch as the dict fastavro writes, each snapshot's values split by type."""
        return {"snapshots": [_split_snapshot(snapshot) for snapshot in self.snapshots]}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """Build the batch from fastavro's dict, each snapshot's values merged again."""
        return cls(snapshots=[_merged_snapshot(item) for item in datum["snapshots"]])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MerchantOutcomeBatch(AvroRecord):
    """Internal: the merchant outcomes of one processed batch bound for one health partition."""

    subject: ClassVar[str] = "paystream.risk.internal.MerchantOutcomeBatch"

    outcomes: list[MerchantOutcome]

    def to_avro(self) -> dict[str, Any]:
        """The batch as the dict fastavro writes."""
        return {"outcomes": [_outcome_datum(outcome) for outcome in self.outcomes]}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """Build the batch from fastavro's dict."""
        return cls(outcomes=[MerchantOutcome(**outcome) for outcome in datum["outcomes"]])


def _outcome_datum(outcome: MerchantOutcome) -> dict[str, Any]:
    return {
        "merchant_id": outcome.merchant_id,
        "payment_id": outcome.payment_id,
        "at_ms": outcome.at_ms,
        "kinds": outcome.kinds,
        "source_event_id": outcome.source_event_id,
    }


def _request_datum(request: FeatureRequest) -> dict[str, Any]:
    # Spelled out: dataclasses.asdict deep-copies every value and cost most of the encoding.
    return {
        "payment_id": request.payment_id,
        "dimension": request.dimension,
        "value": request.value,
        "at_ms": request.at_ms,
        "amount_minor": request.amount_minor,
        "currency": request.currency,
        "business_date": request.business_date,
        "partners": request.partners,
    }


def split_values(
    values: FeatureValues,
) -> tuple[dict[str, int], dict[str, bool], dict[str, str]]:
    """Feature values as (integers, booleans, texts): the typed maps that travel fastest."""
    counts: dict[str, int] = {}
    flags: dict[str, bool] = {}
    labels: dict[str, str] = {}
    for name, value in values.items():
        # bool before int: a bool is an int to isinstance.
        if value is True or value is False:
            flags[name] = value
        elif isinstance(value, int):
            counts[name] = value
        else:
            labels[name] = value
    return counts, flags, labels


def _split_snapshot(snapshot: FeatureSnapshot) -> dict[str, Any]:
    counts, flags, labels = split_values(snapshot.features)
    return {
        "payment_id": snapshot.payment_id,
        "dimension": snapshot.dimension,
        "counts": counts,
        "flags": flags,
        "labels": labels,
    }


def _merged_snapshot(item: dict[str, Any]) -> FeatureSnapshot:
    features: FeatureValues = {**item["counts"], **item["flags"], **item["labels"]}
    return FeatureSnapshot(
        payment_id=item["payment_id"], dimension=item["dimension"], features=features
    )
