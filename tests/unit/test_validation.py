"""Validation: the first decision on a payment, its reason codes, limits and identity."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from events.identity import payment_id_for
from events.records import (
    PaymentAccepted,
    PaymentMethod,
    PaymentRejected,
    RejectionReason,
    RequestPayment,
)
from streams.validation import ValidationPolicy, decide, validate_request
from tests.unit.samples import request_payment

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MAX = 10_000_000
POLICY = ValidationPolicy(max_amount_minor=MAX)


make_request = request_payment


def refused(request: RequestPayment, policy: ValidationPolicy = POLICY) -> PaymentRejected:
    event = decide(request, policy, NOW)
    assert isinstance(event, PaymentRejected), f"expected a rejection, got {event}"
    return event


def test_well_formed_request_passes_validation():
    assert validate_request(make_request(), POLICY) is None


def test_minimal_request_without_optional_fields_passes_validation():
    minimal = make_request(
        method=PaymentMethod.UNSPECIFIED,
        channel=None,
        description=None,
        device_id=None,
        client_ip=None,
        account_fingerprint=None,
        region=None,
        metadata={},
    )
    assert validate_request(minimal, POLICY) is None


# --- one test per reason code -------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, -64800])
def test_amount_zero_or_negative_is_amount_not_positive(amount):
    event = refused(make_request(amount_minor=amount))
    assert event.reason is RejectionReason.AMOUNT_NOT_POSITIVE
    assert "amount_minor" in event.detail
    assert event.amount_minor == amount


def test_amount_above_the_maximum_is_amount_over_maximum():
    event = refused(make_request(amount_minor=MAX * 3))
    assert event.reason is RejectionReason.AMOUNT_OVER_MAXIMUM
    assert "amount_minor" in event.detail
    assert str(MAX) in event.detail


@pytest.mark.parametrize("currency", ["XYZ", "cny", "XAU", "XXX", ""])
def test_currency_outside_iso_4217_with_minor_units_is_unknown_currency(currency):
    event = refused(make_request(currency=currency))
    assert event.reason is RejectionReason.UNKNOWN_CURRENCY
    assert "currency" in event.detail
    assert event.currency == currency


def test_empty_merchant_is_merchant_missing():
    event = refused(make_request(merchant_id=""))
    assert event.reason is RejectionReason.MERCHANT_MISSING
    assert "merchant_id" in event.detail
    assert event.merchant_id == ""


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("command_id", "not-a-uuid"),
        ("command_id", ""),
        ("idempotency_key", ""),
        ("idempotency_key", "order 42"),
        ("idempotency_key", "k" * 256),
        ("idempotency_key", "order-42\t"),
        ("idempotency_key", "订单42"),
        ("merchant_id", "shop 42"),
        ("merchant_id", "-shop"),
        ("order_id", "order with spaces"),
        ("order_id", "ORD'; DROP TABLE payments;--"),
        ("order_id", "O" * 65),
        ("user_id", ""),
        ("user_id", "u/1"),
        ("client_ip", "999.1.1.1"),
        ("client_ip", "localhost"),
        ("client_ip", ""),
        ("region", "cn"),
        ("region", "CHN"),
        ("region", ""),
        ("channel", "wechat h5"),
        ("channel", ""),
    ],
)
def test_malformed_field_is_refused_naming_the_field(field_name, value):
    event = refused(make_request(**{field_name: value}))
    assert event.reason is RejectionReason.MALFORMED_FIELD
    assert event.detail.startswith(field_name)
    assert repr(value) in event.detail


def test_rejection_carries_the_request_and_the_stage():
    request = make_request(amount_minor=0)
    event = refused(request)
    assert event.stage == "validation"
    assert event.occurred_at == NOW
    assert event.command_id == request.command_id
    assert event.idempotency_key == request.idempotency_key
    assert event.merchant_id == request.merchant_id
    assert event.order_id == request.order_id
    assert event.user_id == request.user_id
    assert event.currency == request.currency


# --- boundaries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "k",
        "k" * 255,
        "!~",
        "order:42/retry#1",
    ],
)
def test_idempotency_key_of_1_to_255_printable_ascii_is_accepted(value):
    assert validate_request(make_request(idempotency_key=value), POLICY) is None


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("order_id", "O" * 64),
        ("order_id", "9"),
        ("merchant_id", "shop_1.eu:main@x-y"),
        ("client_ip", "2001:db8::7"),
        ("client_ip", "0.0.0.0"),
        ("region", "JP"),
        ("channel", "alipay-app"),
    ],
)
def test_well_formed_edge_values_are_accepted(field_name, value):
    assert validate_request(make_request(**{field_name: value}), POLICY) is None


def test_amount_equal_to_the_maximum_is_accepted():
    assert isinstance(decide(make_request(amount_minor=MAX), POLICY, NOW), PaymentAccepted)


def test_amount_one_above_the_maximum_is_refused():
    event = refused(make_request(amount_minor=MAX + 1))
    assert event.reason is RejectionReason.AMOUNT_OVER_MAXIMUM


def test_smallest_positive_amount_is_accepted():
    assert validate_request(make_request(amount_minor=1), POLICY) is None


@pytest.mark.parametrize(
    ("currency", "amount", "accepted"),
    [
        ("JPY", 5000, True),
        ("JPY", 5001, False),
        ("JPY", 101, True),  # the override replaces the default maximum, even upwards
        ("CNY", 100, True),
        ("CNY", 101, False),
        ("USD", 101, False),
    ],
)
def test_per_currency_maximum_overrides_the_default(currency, amount, accepted):
    policy = ValidationPolicy(max_amount_minor=100, max_amount_minor_by_currency={"JPY": 5000})
    event = decide(make_request(currency=currency, amount_minor=amount), policy, NOW)
    if accepted:
        assert isinstance(event, PaymentAccepted)
    else:
        assert isinstance(event, PaymentRejected)
        assert event.reason is RejectionReason.AMOUNT_OVER_MAXIMUM
        limit = "5000" if currency == "JPY" else "100"
        assert f"maximum {limit}" in event.detail


# --- the accepted event and identity -------------------------------------------------------


def test_accepted_event_carries_every_request_field():
    request = make_request()
    event = decide(request, POLICY, NOW)
    assert isinstance(event, PaymentAccepted)
    renamed = {"channel": "requested_channel"}
    for field in dataclasses.fields(RequestPayment):
        if field.name == "issued_at":
            continue  # the event has its own time: when it was decided
        target = renamed.get(field.name, field.name)
        assert getattr(event, target) == getattr(request, field.name), field.name
    assert event.occurred_at == NOW


def test_accepted_metadata_is_not_shared_with_the_request():
    request = make_request(metadata={"sku": "sku-648"})
    event = decide(request, POLICY, NOW)
    request.metadata["sku"] = "tampered"
    assert event.metadata == {"sku": "sku-648"}


@pytest.mark.parametrize(
    "request_",
    [make_request(), make_request(amount_minor=0)],
    ids=["accepted", "rejected"],
)
def test_decide_is_deterministic(request_):
    first = decide(request_, POLICY, NOW)
    again = decide(request_, POLICY, datetime(2030, 1, 1, tzinfo=UTC))
    assert type(first) is type(again)
    assert first.event_id == again.event_id
    assert first.payment_id == again.payment_id


@pytest.mark.parametrize(
    "request_",
    [make_request(), make_request(currency="XYZ")],
    ids=["accepted", "rejected"],
)
def test_payment_id_is_derived_from_merchant_and_idempotency_key(request_):
    event = decide(request_, POLICY, NOW)
    assert event.payment_id == payment_id_for(request_.merchant_id, request_.idempotency_key)


def test_retry_with_a_new_command_id_maps_to_the_same_payment():
    first = decide(make_request(), POLICY, NOW)
    retry = decide(make_request(command_id="0b4e7d52-90c3-4a8e-a1f5-7c2d9e3b6a18"), POLICY, NOW)
    assert retry.payment_id == first.payment_id


def test_different_keys_or_merchants_are_different_payments():
    base = decide(make_request(), POLICY, NOW)
    other_key = decide(make_request(idempotency_key="order-0000043-a1b2c3d4"), POLICY, NOW)
    other_merchant = decide(make_request(merchant_id="shop-0043"), POLICY, NOW)
    ids = {base.payment_id, other_key.payment_id, other_merchant.payment_id}
    events = {base.event_id, other_key.event_id, other_merchant.event_id}
    assert len(ids) == 3
    assert len(events) == 3


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("idempotency_key", "order-42\n"),
        ("order_id", "ORD42\n"),
        ("merchant_id", "shop-0042\n"),
        ("region", "CN\n"),
        ("channel", "wechat-h5\n"),
    ],
)
def test_trailing_newline_is_malformed(field_name, value):
    event = refused(make_request(**{field_name: value}))
    assert event.reason is RejectionReason.MALFORMED_FIELD


@pytest.mark.parametrize(
    "command_id",
    [
        "{6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41}",
        "urn:uuid:6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41",
        "6d8a1f8e6c1a4f579b0e3f6d2a7c9e41",
        "6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41\n",
    ],
)
def test_non_canonical_command_id_is_malformed(command_id):
    event = refused(make_request(command_id=command_id))
    assert event.reason is RejectionReason.MALFORMED_FIELD
    assert "command_id" in event.detail
