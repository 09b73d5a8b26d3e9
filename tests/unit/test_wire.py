"""The wire format: Confluent framing around Avro bodies, decode errors, schema resolution."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
from datetime import UTC, datetime

import fastavro
import pytest

from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.payout_records import (
    PayoutCompleted,
    PayoutFailed,
    PayoutRejected,
    PayoutRouted,
    RequestPayout,
)
from events.record_types import RECORD_TYPES
from events.records import (
    AvroRecord,
    ChargebackReceived,
    CommandDeduplicated,
    DeadLetter,
    PaymentAccepted,
    PaymentMethod,
    PaymentRefunded,
    PaymentRejected,
    RejectionReason,
    RequestPayment,
)
from events.refund_records import RefundFailed, RefundRejected, RefundRouted, RequestRefund
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureRequestBatch,
    FeatureSnapshot,
    FeatureSnapshotBatch,
    HoldResolution,
    MerchantApplied,
    MerchantDecision,
    MerchantLimitsOverridden,
    MerchantOutcome,
    MerchantOutcomeBatch,
    MerchantRatingChanged,
    MerchantReviewed,
    ReviewDecision,
    ReviewVerdict,
    RiskAlert,
    RiskAssessed,
    RiskHoldResolved,
    RiskOutcome,
    RuleFiring,
    RuleSetPublished,
)
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    ChannelNotified,
    ChannelObservation,
    ChannelUsage,
    PaymentCaptured,
    PaymentFailed,
    PaymentRouted,
    RouteCandidate,
    RoutingPolicyPublished,
)
from events.schema_store import ManifestSchemas, SchemaVersion
from events.wire import (
    AvroBodyError,
    BadFraming,
    DecodeError,
    EventCodec,
    UnexpectedRecordType,
    UnknownRecordType,
    UnknownSchemaId,
    frame,
    unframe,
)
from tests.unit.samples import request_payment

# Millisecond precision: the wire keeps timestamp-millis.
ISSUED_AT = datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=UTC)
DECIDED_AT = datetime(2024, 5, 1, 12, 30, 45, 456000, tzinfo=UTC)
COMMAND_ID = "6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41"
REPEAT_COMMAND_ID = "0b4e7d52-90c3-4a8e-a1f5-7c2d9e3b6a18"
PAYMENT_ID = "2f1e4c6a-8b3d-5e7f-9a1c-0d2e4f6a8b3c"
EVENT_ID = "9c7b5a3e-1d2f-5a4b-8c6d-e0f1a2b3c4d5"


def _request_payment() -> RequestPayment:
    return request_payment(
        command_id=COMMAND_ID,
        issued_at=ISSUED_AT,
        description="648 金币充值",
        client_ip="2001:db8::7",
        metadata={"sku": "sku-648", "campaign": "spring"},
    )


def _payment_accepted() -> PaymentAccepted:
    return PaymentAccepted(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        command_id=COMMAND_ID,
        idempotency_key="order-0000042-a1b2c3d4",
        merchant_id="shop-0042",
        order_id="ORD000000042",
        user_id="u004711",
        amount_minor=64800,
        currency="CNY",
        method=PaymentMethod.ALIPAY,
        requested_channel="alipay-app",
        description="648 金币充值",
        device_id="dev-00ab12cd34",
        client_ip="10.1.2.3",
        account_fingerprint="sha256:4f2a9c",
        region="CN",
        metadata={"sku": "sku-648"},
    )


def _payment_rejected() -> PaymentRejected:
    return PaymentRejected(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        command_id=COMMAND_ID,
        idempotency_key="order-0000043-ffee0011",
        merchant_id="shop-0042",
        order_id="ORD000000043",
        user_id="u004711",
        amount_minor=-3000,
        currency="CNY",
        stage="validation",
        reason=RejectionReason.AMOUNT_NOT_POSITIVE,
        detail="amount_minor -3000 must be greater than zero",
    )


def _command_deduplicated() -> CommandDeduplicated:
    return CommandDeduplicated(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        command_id=REPEAT_COMMAND_ID,
        original_command_id=COMMAND_ID,
        idempotency_key="order-0000042-a1b2c3d4",
        merchant_id="shop-0042",
        request_matches=False,
    )


def _dead_letter() -> DeadLetter:
    return DeadLetter(
        dead_letter_id=EVENT_ID,
        failed_at=DECIDED_AT,
        processor="intake",
        source_topic="paystream.payments.commands",
        source_partition=3,
        source_offset=1_234_567_890_123,
        key=b"shop-0042/order-0000042-a1b2c3d4",
        payload=b"\x00\x00\x00\x03\xe7\xff\xff",
        error_type="UnknownSchemaId",
        reason="schema id 999 is not in the manifest",
    )


def _payment_refunded() -> PaymentRefunded:
    return PaymentRefunded(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        refund_id="rf-20240501-000017",
        amount_minor=12_800,
        currency="CNY",
        channel="alipay",
        channel_ref="2024050122001400001234567890",
    )


def _chargeback_received() -> ChargebackReceived:
    return ChargebackReceived(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        chargeback_id="cb-7Q2M9X",
        amount_minor=64_800,
        currency="CNY",
        reason_code="4837",
    )


def _merchant_applied() -> MerchantApplied:
    return MerchantApplied(
        event_id=EVENT_ID,
        merchant_id="shop-0042",
        occurred_at=ISSUED_AT,
        legal_name="杭州小鹿文具有限公司",
        business_category="5943",
        region="CN",
        contact_email="risk@xiaolu-stationery.example",
    )


def _merchant_reviewed() -> MerchantReviewed:
    return MerchantReviewed(
        event_id=EVENT_ID,
        merchant_id="shop-0042",
        occurred_at=DECIDED_AT,
        decision=MerchantDecision.APPROVED,
        rating="B",
        reviewer="onboarding:li.wei",
        reason="licence verified; 14 months of trading history",
    )


def _merchant_limits_overridden() -> MerchantLimitsOverridden:
    return MerchantLimitsOverridden(
        event_id=EVENT_ID,
        merchant_id="shop-0042",
        occurred_at=DECIDED_AT,
        limits={"single_payment.CNY": 2_000_000, "user_payments_1h": 20},
        set_by="risk:zhang.min",
        reason="wholesale buyers place few large orders",
    )


def _merchant_rating_changed() -> MerchantRatingChanged:
    return MerchantRatingChanged(
        event_id=EVENT_ID,
        merchant_id="shop-0042",
        occurred_at=DECIDED_AT,
        previous_rating="B",
        rating="C",
        reason="alert chargeback_ratio_high (approved_30d=140, chargeback_ratio_bp_30d=142)",
        source="alert:chargeback_ratio_high",
    )


RULE_TEXT = """version 7
limit B single_payment CNY 10000.00
rule card_testing_device_burst reject when device.payments_1m >= 5 and amount <= 500
alert chargeback_ratio_high downgrade when approved_30d >= 100 and chargeback_ratio_bp_30d >= 100
"""


def _ruleset_published() -> RuleSetPublished:
    return RuleSetPublished(
        event_id=EVENT_ID,
        occurred_at=DECIDED_AT,
        version=7,
        digest=hashlib.sha256(RULE_TEXT.encode()).hexdigest(),
        text=RULE_TEXT,
        published_by="risk:zhang.min",
    )


def _risk_assessed() -> RiskAssessed:
    return RiskAssessed(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        order_id="ORD000000042",
        user_id="u004711",
        amount_minor=300,
        currency="CNY",
        method=PaymentMethod.CARD,
        requested_channel="card-direct",
        outcome=RiskOutcome.DELAY,
        hold_until=datetime(2024, 5, 1, 12, 35, 45, 456000, tzinfo=UTC),
        ruleset_version=7,
        ruleset_digest=hashlib.sha256(RULE_TEXT.encode()).hexdigest(),
        merchant_rating="B",
        limit_overrides={"single_payment.CNY": 2_000_000},
        fired=[
            RuleFiring(
                rule="new_account_large_amount",
                outcome=RiskOutcome.DELAY,
                delay_seconds=300,
                inputs={
                    "account.first_seen": True,
                    "user.history_payments": 4,
                    "user.amount_vs_usual_pct": 600,
                },
            ),
            RuleFiring(
                rule="risk.features_missing",
                outcome=RiskOutcome.REVIEW,
                delay_seconds=0,
                inputs={"missing": "ip"},
            ),
        ],
        features={
            "amount": 300,
            "currency": "CNY",
            "merchant.rating": "B",
            "account.first_seen": True,
            "ip.present": False,
            "user.history_payments": 4,
            "user.amount_vs_usual_pct": 600,
        },
    )


def _risk_hold_resolved() -> RiskHoldResolved:
    return RiskHoldResolved(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        amount_minor=64_800,
        currency="CNY",
        hold=RiskOutcome.REVIEW,
        resolution=HoldResolution.RELEASED,
        resolved_by="review:chen.jing",
        reason="called the user; the purchase is genuine",
    )


def _review_decision() -> ReviewDecision:
    return ReviewDecision(
        command_id=REPEAT_COMMAND_ID,
        payment_id=PAYMENT_ID,
        issued_at=DECIDED_AT,
        verdict=ReviewVerdict.REJECT,
        reviewer="review:chen.jing",
        reason="card reported stolen by the issuer",
    )


def _risk_alert() -> RiskAlert:
    return RiskAlert(
        event_id=EVENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        alert="chargeback_ratio_high",
        downgrade=True,
        inputs={"approved_30d": 140, "chargeback_ratio_bp_30d": 142},
        ruleset_version=7,
    )


def _feature_request() -> FeatureRequest:
    return FeatureRequest(
        payment_id=PAYMENT_ID,
        dimension="device",
        value="dev-00ab12cd34",
        at_ms=1_714_566_645_456,
        amount_minor=64_800,
        currency="CNY",
        business_date="2024-05-01",
        partners={"user": "u004711", "account": "sha256:4f2a9c"},
    )


def _feature_release() -> FeatureRelease:
    return FeatureRelease(
        payment_id=PAYMENT_ID,
        dimension="user",
        value="u004711",
        business_date="2024-05-01",
        amount_minor=64_800,
        currency="CNY",
    )


def _feature_snapshot() -> FeatureSnapshot:
    return FeatureSnapshot(
        payment_id=PAYMENT_ID,
        dimension="device",
        features={
            "first_seen": False,
            "history_payments": 12,
            "payments_1m": 1,
            "daily_amount": 6_800,
            "distinct_accounts_1h": 1,
        },
    )


def _feature_request_batch() -> FeatureRequestBatch:
    other = dataclasses.replace(_feature_request(), dimension="user", value="u004711")
    return FeatureRequestBatch(requests=[_feature_request(), other])


def _feature_snapshot_batch() -> FeatureSnapshotBatch:
    # Every value type, so the split into typed maps and the merge back are both exercised.
    labelled = FeatureSnapshot(
        payment_id=PAYMENT_ID, dimension="merchant", features={"tier": "gold", "present": True}
    )
    return FeatureSnapshotBatch(snapshots=[_feature_snapshot(), labelled])


def _feature_request_rows() -> FeatureRequestRows:
    return FeatureRequestRows(requests=_feature_request_batch().requests)


def _feature_snapshot_rows() -> FeatureSnapshotRows:
    labelled = FeatureSnapshot(
        payment_id=PAYMENT_ID, dimension="merchant", features={"tier": "gold", "present": True}
    )
    return FeatureSnapshotRows(snapshots=[_feature_snapshot(), labelled])


def _merchant_outcome_batch() -> MerchantOutcomeBatch:
    refund = dataclasses.replace(_merchant_outcome(), kinds=["refunds"], source_event_id="e-2")
    return MerchantOutcomeBatch(outcomes=[_merchant_outcome(), refund])


def _merchant_outcome() -> MerchantOutcome:
    return MerchantOutcome(
        merchant_id="shop-0042",
        payment_id=PAYMENT_ID,
        at_ms=1_714_566_645_456,
        kinds=["payments", "approved"],
        source_event_id=EVENT_ID,
    )


def _payment_routed() -> PaymentRouted:
    return PaymentRouted(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        amount_minor=12_800,
        currency="CNY",
        method=PaymentMethod.CARD,
        channel="card_b",
        fallbacks=["card"],
        reason_code="CHEAPEST_IN_BAND",
        reason="cheapest within 200 bp of the best success rate",
        policy_version=3,
        candidates=[
            RouteCandidate(
                channel="card_b",
                fee_minor=77,
                success_rate_bp=9_650,
                latency_ms=140,
                eliminated=None,
                note="winner",
            ),
            RouteCandidate(
                channel="card",
                fee_minor=None,
                success_rate_bp=None,
                latency_ms=None,
                eliminated="over its daily count quota",
                note="",
            ),
        ],
    )


def _channel_attempt_failed() -> ChannelAttemptFailed:
    return ChannelAttemptFailed(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        channel="card",
        attempt=1,
        code="processing_error",
        error_class="RETRYABLE",
        message="An error occurred while processing the card.",
        latency_ms=312,
        next_channel="card_b",
    )


def _channel_attempt_pending() -> ChannelAttemptPending:
    return ChannelAttemptPending(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        channel="wechat",
        attempt=1,
        status="UNKNOWN",
        code="TIMEOUT",
        detail="no answer in 5.0 s",
    )


def _payment_captured() -> PaymentCaptured:
    return PaymentCaptured(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        channel="alipay",
        channel_ref="2024050122001400001234567890",
        amount_minor=12_800,
        currency="CNY",
        fee_minor=77,
        attempt=2,
        settled_by="query",
    )


def _payment_failed() -> PaymentFailed:
    return PaymentFailed(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        amount_minor=12_800,
        currency="CNY",
        reason_code="FINAL_DECLINE",
        detail="card: insufficient_funds",
        channels_tried=["card"],
    )


def _channel_notified() -> ChannelNotified:
    return ChannelNotified(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        channel="wechat",
        kind="REFUND",
        outcome="SUCCEEDED",
        channel_ref="50300001234567890",
        amount_minor=3_000,
        currency="CNY",
        refund_id="rf-20240501-000017",
        notice_id="EV-2018022511223320873",
    )


def _channel_observation() -> ChannelObservation:
    return ChannelObservation(
        event_id=EVENT_ID,
        occurred_at=DECIDED_AT,
        channel="alipay",
        succeeded=False,
        timed_out=True,
        latency_ms=5_000,
    )


def _channel_usage() -> ChannelUsage:
    return ChannelUsage(
        event_id=EVENT_ID,
        occurred_at=DECIDED_AT,
        channel="alipay",
        merchant_id="shop-0042",
        amount_minor=12_800,
        currency="CNY",
        business_date="2024-05-01",
        router="router-7f3a",
    )


def _routing_policy_published() -> RoutingPolicyPublished:
    return RoutingPolicyPublished(
        event_id=EVENT_ID,
        occurred_at=DECIDED_AT,
        version=3,
        digest=hashlib.sha256(b"version = 3").hexdigest(),
        text="version = 3",
        published_by="ops@example.com",
    )


def _request_refund() -> RequestRefund:
    return RequestRefund(
        command_id="5b1e9c7e-2f0a-4c44-9a51-77f3b0a1d2c3",
        idempotency_key="refund-0000042-1",
        issued_at=DECIDED_AT,
        merchant_id="shop-0042",
        payment_id=PAYMENT_ID,
        amount_minor=3_000,
        currency="CNY",
        reason="the user cancelled part of the order",
    )


def _refund_routed() -> RefundRouted:
    return RefundRouted(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        refund_id="rf-20240501-000017",
        command_id="5b1e9c7e-2f0a-4c44-9a51-77f3b0a1d2c3",
        amount_minor=3_000,
        currency="CNY",
        captured_minor=12_800,
        refundable_minor=12_800,
        channel="wechat",
        reason="the user cancelled part of the order",
    )


def _refund_rejected() -> RefundRejected:
    return RefundRejected(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        refund_id="rf-20240501-000018",
        command_id="0c3d7a55-9f1e-4b2a-8c6d-2e4f6a8b0c1d",
        amount_minor=20_000,
        currency="CNY",
        reason_code="OVER_REFUNDABLE",
        detail="only 9800 minor units are left to refund",
    )


def _refund_failed() -> RefundFailed:
    return RefundFailed(
        event_id=EVENT_ID,
        payment_id=PAYMENT_ID,
        occurred_at=DECIDED_AT,
        merchant_id="shop-0042",
        refund_id="rf-20240501-000017",
        channel="wechat",
        amount_minor=3_000,
        currency="CNY",
        code="NOT_ENOUGH",
        detail="the merchant's balance cannot fund the refund yet",
    )


def _request_payout() -> RequestPayout:
    return RequestPayout(
        command_id="8e2f1a6b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        idempotency_key="withdraw-2024-05-01",
        issued_at=DECIDED_AT,
        merchant_id="creator-0007",
        channel="alipay",
        payee_account="creator7@example.com",
        payee_name="Li Lei",
        amount_minor=250_000,
        currency="CNY",
        remark="May earnings",
    )


def _payout_routed() -> PayoutRouted:
    return PayoutRouted(
        event_id=EVENT_ID,
        payout_id="po-20240501-0001",
        occurred_at=DECIDED_AT,
        merchant_id="creator-0007",
        command_id="8e2f1a6b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        channel="alipay",
        payee_account="creator7@example.com",
        payee_name="Li Lei",
        amount_minor=250_000,
        currency="CNY",
        remark="May earnings",
        merchant_rating="B",
        limits={"single_payout": 5_000_000, "daily_payout": 20_000_000},
        paid_today_minor=100_000,
    )


def _payout_rejected() -> PayoutRejected:
    return PayoutRejected(
        event_id=EVENT_ID,
        payout_id="po-20240501-0002",
        occurred_at=DECIDED_AT,
        merchant_id="creator-0007",
        command_id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        amount_minor=30_000_000,
        currency="CNY",
        reason_code="limit.daily_payout",
        detail="only 19650000 is left of today's limit 20000000",
    )


def _payout_completed() -> PayoutCompleted:
    return PayoutCompleted(
        event_id=EVENT_ID,
        payout_id="po-20240501-0001",
        occurred_at=DECIDED_AT,
        merchant_id="creator-0007",
        channel="alipay",
        channel_ref="20240501110070000006210000012345",
        amount_minor=250_000,
        currency="CNY",
        settled_by="reply",
    )


def _payout_failed() -> PayoutFailed:
    return PayoutFailed(
        event_id=EVENT_ID,
        payout_id="po-20240501-0003",
        occurred_at=DECIDED_AT,
        merchant_id="creator-0007",
        channel="wechat",
        amount_minor=5_000,
        currency="CNY",
        code="NAME_NOT_CORRECT",
        detail="the payee's name does not match the account",
    )


BUILDERS = {
    RequestPayment: _request_payment,
    PaymentAccepted: _payment_accepted,
    PaymentRejected: _payment_rejected,
    CommandDeduplicated: _command_deduplicated,
    DeadLetter: _dead_letter,
    PaymentRefunded: _payment_refunded,
    ChargebackReceived: _chargeback_received,
    MerchantApplied: _merchant_applied,
    MerchantReviewed: _merchant_reviewed,
    MerchantLimitsOverridden: _merchant_limits_overridden,
    MerchantRatingChanged: _merchant_rating_changed,
    RuleSetPublished: _ruleset_published,
    RiskAssessed: _risk_assessed,
    RiskHoldResolved: _risk_hold_resolved,
    ReviewDecision: _review_decision,
    RiskAlert: _risk_alert,
    FeatureRequest: _feature_request,
    FeatureRelease: _feature_release,
    FeatureSnapshot: _feature_snapshot,
    FeatureRequestBatch: _feature_request_batch,
    FeatureSnapshotBatch: _feature_snapshot_batch,
    FeatureSnapshotRows: _feature_snapshot_rows,
    FeatureRequestRows: _feature_request_rows,
    MerchantOutcomeBatch: _merchant_outcome_batch,
    MerchantOutcome: _merchant_outcome,
    PaymentRouted: _payment_routed,
    ChannelAttemptFailed: _channel_attempt_failed,
    ChannelAttemptPending: _channel_attempt_pending,
    PaymentCaptured: _payment_captured,
    PaymentFailed: _payment_failed,
    ChannelNotified: _channel_notified,
    ChannelObservation: _channel_observation,
    ChannelUsage: _channel_usage,
    RoutingPolicyPublished: _routing_policy_published,
    RequestRefund: _request_refund,
    RefundRouted: _refund_routed,
    RefundRejected: _refund_rejected,
    RefundFailed: _refund_failed,
    RequestPayout: _request_payout,
    PayoutRouted: _payout_routed,
    PayoutRejected: _payout_rejected,
    PayoutCompleted: _payout_completed,
    PayoutFailed: _payout_failed,
}


@pytest.fixture(scope="module")
def manifest() -> ManifestSchemas:
    return ManifestSchemas()


@pytest.fixture(scope="module")
def codec(manifest) -> EventCodec:
    return EventCodec(manifest)


class CatalogueWithExtraIds:
    """A SchemaCatalogue: the manifest's newest schemas, plus writer schemas under extra ids."""

    def __init__(self, manifest: ManifestSchemas, extra: dict[int, SchemaVersion]) -> None:
        self._manifest = manifest
        self._extra = extra

    def latest(self, subject: str) -> SchemaVersion:
        return self._manifest.latest(subject)

    def by_id(self, schema_id: int) -> SchemaVersion:
        if schema_id in self._extra:
            return self._extra[schema_id]
        return self._manifest.by_id(schema_id)


def _avro_body(schema: SchemaVersion, datum: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, datum)
    return body.getvalue()


def test_every_record_type_has_a_sample_here():
    assert {cls.subject for cls in BUILDERS} == set(RECORD_TYPES)


@pytest.mark.parametrize("record_type", list(BUILDERS), ids=lambda cls: cls.__name__)
def test_every_record_type_survives_a_round_trip(codec, record_type):
    record = BUILDERS[record_type]()
    decoded = codec.decode(codec.encode(record))
    assert type(decoded) is record_type
    assert decoded == record


def test_enum_fields_come_back_as_enums_not_strings(codec):
    decoded = codec.decode(codec.encode(_payment_rejected()))
    assert isinstance(decoded, PaymentRejected)
    assert decoded.reason is RejectionReason.AMOUNT_NOT_POSITIVE
    accepted = codec.decode(codec.encode(_payment_accepted()))
    assert isinstance(accepted, PaymentAccepted)
    assert accepted.method is PaymentMethod.ALIPAY


def test_dead_letter_without_a_key_round_trips(codec):
    record = _dead_letter()
    keyless = DeadLetter(**{**record.to_avro(), "key": None})
    assert codec.decode(codec.encode(keyless)) == keyless


def _exact(values: dict) -> dict:
    """Values with their types: True == 1 in Python, so equality alone would hide a lost bool."""
    return {name: (type(value), value) for name, value in values.items()}


def test_risk_assessed_keeps_bool_int_and_str_feature_values_apart(codec):
    record = dataclasses.replace(
        _risk_assessed(),
        features={
            "account.first_seen": True,
            "ip.present": False,
            "user.history_payments": 1,
            "user.payments_1m": 0,
            "amount": 300,
            "currency": "CNY",
            "merchant.rating": "",
        },
    )

    decoded = codec.decode(codec.encode(record))

    assert isinstance(decoded, RiskAssessed)
    assert _exact(decoded.features) == _exact(record.features)
    assert decoded.features["account.first_seen"] is True
    assert type(decoded.features["user.history_payments"]) is int
    assert type(decoded.features["user.payments_1m"]) is int
    assert [type(firing) for firing in decoded.fired] == [RuleFiring, RuleFiring]
    assert [firing.outcome for firing in decoded.fired] == [
        RiskOutcome.DELAY,
        RiskOutcome.REVIEW,
    ]
    for sent, received in zip(record.fired, decoded.fired, strict=True):
        assert _exact(received.inputs) == _exact(sent.inputs)
    assert decoded.hold_until == record.hold_until
    assert decoded == record


def test_risk_alert_and_snapshot_keep_feature_value_types(codec):
    alert = dataclasses.replace(_risk_alert(), inputs={"rating": "B", "approved_30d": 1})
    snapshot = dataclasses.replace(
        _feature_snapshot(), features={"first_seen": True, "history_payments": 1}
    )
    decoded_alert = codec.decode(codec.encode(alert))
    decoded_snapshot = codec.decode(codec.encode(snapshot))
    assert isinstance(decoded_alert, RiskAlert)
    assert isinstance(decoded_snapshot, FeatureSnapshot)
    assert _exact(decoded_alert.inputs) == _exact(alert.inputs)
    assert _exact(decoded_snapshot.features) == _exact(snapshot.features)


@pytest.mark.parametrize("record_type", list(BUILDERS), ids=lambda cls: cls.__name__)
def test_encoded_message_starts_with_the_confluent_header(codec, manifest, record_type):
    message = codec.encode(BUILDERS[record_type]())
    schema_id = manifest.latest(record_type.subject).schema_id
    assert message[0] == 0
    assert message[1:5] == schema_id.to_bytes(4, "big")


def test_request_payment_header_is_magic_zero_then_schema_id_one(codec):
    # The manifest pins RequestPayment v1 to id 1: other-language producers rely on it.
    assert codec.encode(_request_payment())[:5] == b"\x00\x00\x00\x00\x01"


def test_frame_writes_the_schema_id_big_endian():
    assert frame(258, b"body") == b"\x00\x00\x00\x01\x02body"
    assert frame(0xFFFFFFFF, b"") == b"\x00\xff\xff\xff\xff"


@pytest.mark.parametrize("schema_id", [0, 1, 999, 2**31, 2**32 - 1])
def test_unframe_returns_what_frame_was_given(schema_id):
    assert unframe(frame(schema_id, b"\x02\x04avro")) == (schema_id, b"\x02\x04avro")


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x00\x01", id="three-bytes"),
        pytest.param(b"\x00\x00\x00\x01", id="four-bytes"),
        pytest.param(b"\x01\x00\x00\x00\x01\x02\x04", id="magic-byte-1"),
        pytest.param(b"\xff\x00\x00\x00\x01\x02\x04", id="magic-byte-255"),
        pytest.param(b"not avro at all", id="text"),
        pytest.param(None, id="tombstone"),
    ],
)
def test_badly_framed_messages_are_bad_framing(codec, message):
    with pytest.raises(BadFraming) as caught:
        codec.decode(message)
    assert caught.value.kind == "BadFraming"
    assert isinstance(caught.value, DecodeError)


def test_magic_byte_other_than_zero_is_refused_even_with_a_valid_body(codec):
    message = codec.encode(_request_payment())
    with pytest.raises(BadFraming):
        codec.decode(b"\x01" + message[1:])


def test_schema_id_not_in_the_manifest_is_unknown(codec):
    body = unframe(codec.encode(_request_payment()))[1]
    with pytest.raises(UnknownSchemaId) as caught:
        codec.decode(frame(999, body))
    assert caught.value.kind == "UnknownSchemaId"
    assert "999" in str(caught.value)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda message: message[:5], id="header-only"),
        pytest.param(lambda message: message[: len(message) // 2], id="truncated-half"),
        pytest.param(lambda message: message[:-3], id="truncated-tail"),
        pytest.param(lambda message: message[:5] + b"\xff" * 20, id="garbage-ff"),
        pytest.param(lambda message: message[:5] + b"\x01" * 40, id="garbage-negative-length"),
    ],
)
def test_valid_header_with_a_broken_body_is_an_avro_body_error(codec, mangle):
    message = mangle(codec.encode(_request_payment()))
    with pytest.raises(AvroBodyError) as caught:
        codec.decode(message)
    assert caught.value.kind == "AvroBodyError"
    assert "paystream.commands.RequestPayment" in str(caught.value)


def test_record_of_the_wrong_type_for_the_topic_is_unexpected(codec):
    message = codec.encode(_payment_accepted())
    with pytest.raises(UnexpectedRecordType) as caught:
        codec.decode_as(message, [RequestPayment])
    assert caught.value.kind == "UnexpectedRecordType"
    assert "PaymentAccepted" in str(caught.value)


def test_decode_as_returns_a_record_of_an_allowed_type(codec):
    record = _payment_rejected()
    allowed = (PaymentAccepted, PaymentRejected, CommandDeduplicated)
    assert codec.decode_as(codec.encode(record), allowed) == record


def test_decode_as_still_reports_framing_problems_first(codec):
    with pytest.raises(BadFraming):
        codec.decode_as(b"\x00\x00", [RequestPayment])


def test_schema_for_a_record_this_code_does_not_know_is_unknown_record_type(manifest):
    subject = "paystream.payouts.PayoutRequested"
    assert subject not in RECORD_TYPES, "pick a subject this code really has no class for"
    payout = SchemaVersion(
        schema_id=200,
        subject=subject,
        version=1,
        definition={
            "type": "record",
            "name": "PayoutRequested",
            "namespace": "paystream.payouts",
            "fields": [{"name": "payout_id", "type": "string"}],
        },
    )
    codec = EventCodec(CatalogueWithExtraIds(manifest, {200: payout}))
    message = frame(200, _avro_body(payout, {"payout_id": PAYMENT_ID}))
    with pytest.raises(UnknownRecordType) as caught:
        codec.decode(message)
    assert caught.value.kind == "UnknownRecordType"


def _older_request_payment_schema(manifest: ManifestSchemas) -> SchemaVersion:
    """RequestPayment as an older producer wrote it: without the fields added with defaults."""
    current = manifest.latest(RequestPayment.subject)
    definition = copy.deepcopy(current.definition)
    definition["fields"] = [
        field for field in definition["fields"] if field["name"] not in {"region", "metadata"}
    ]
    return SchemaVersion(100, RequestPayment.subject, 0, definition)


def test_record_from_an_older_writer_is_read_with_todays_defaults(manifest):
    old = _older_request_payment_schema(manifest)
    datum = _request_payment().to_avro()
    del datum["region"], datum["metadata"]
    message = frame(100, _avro_body(old, datum))

    decoded = EventCodec(CatalogueWithExtraIds(manifest, {100: old})).decode(message)

    assert isinstance(decoded, RequestPayment)
    assert decoded.region is None
    assert decoded.metadata == {}
    expected = _request_payment()
    assert decoded == RequestPayment(**{**expected.to_avro(), "region": None, "metadata": {}})


def test_older_writer_id_is_unknown_to_the_plain_manifest(codec, manifest):
    old = _older_request_payment_schema(manifest)
    datum = _request_payment().to_avro()
    del datum["region"], datum["metadata"]
    with pytest.raises(UnknownSchemaId):
        codec.decode(frame(100, _avro_body(old, datum)))


def test_rejection_reason_unknown_to_this_reader_becomes_unspecified(manifest):
    """A newer writer may add a reason code; older readers see UNSPECIFIED instead of failing."""
    current = manifest.latest(PaymentRejected.subject)
    definition = copy.deepcopy(current.definition)
    for field in definition["fields"]:
        if field["name"] == "reason":
            field["type"]["symbols"].append("FRAUD_SUSPECTED")
    newer = SchemaVersion(101, PaymentRejected.subject, current.version + 1, definition)
    datum = {**_payment_rejected().to_avro(), "stage": "risk", "reason": "FRAUD_SUSPECTED"}

    decoded = EventCodec(CatalogueWithExtraIds(manifest, {101: newer})).decode(
        frame(101, _avro_body(newer, datum))
    )

    assert isinstance(decoded, PaymentRejected)
    assert decoded.reason is RejectionReason.UNSPECIFIED
    assert decoded.stage == "risk"


def test_encoded_record_is_compatible_with_a_plain_avro_reader(codec, manifest):
    """Consumers in other languages read the body with the schema the id names."""
    record: AvroRecord = _payment_accepted()
    schema_id, body = unframe(codec.encode(record))
    datum = fastavro.schemaless_reader(io.BytesIO(body), manifest.by_id(schema_id).parsed)
    assert datum["amount_minor"] == 64800
    assert datum["currency"] == "CNY"
    assert datum["method"] == "ALIPAY"
    assert datum["occurred_at"] == DECIDED_AT


def test_bytes_left_after_a_complete_record_are_a_body_error(codec):
    message = codec.encode(_request_payment()) + b"junk"
    with pytest.raises(AvroBodyError, match="left over"):
        codec.decode(message)


def test_a_decision_written_under_v1_reads_with_every_feature(manifest, codec):
    """v1 kept every feature in one map of unions; v2 readers must still see all of them."""
    (v1,) = [s for s in manifest.versions(RiskAssessed.subject) if s.version == 1]
    record = _risk_assessed()
    datum = {**record.to_avro(), "features": dict(record.features)}
    del datum["feature_counts"], datum["feature_flags"]
    decoded = codec.decode(frame(v1.schema_id, _avro_body(v1, datum)))
    assert decoded == record


def test_a_decision_travels_with_its_values_split_by_type(codec):
    datum = _risk_assessed().to_avro()
    assert datum["features"] == {"currency": "CNY", "merchant.rating": "B"}
    assert datum["feature_flags"] == {"account.first_seen": True, "ip.present": False}
    assert datum["feature_counts"]["user.amount_vs_usual_pct"] == 600
