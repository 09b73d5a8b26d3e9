"""Intake: one decision per merchant and idempotency key, repeats reported, not re-decided."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from events.client import MissingIdempotencyKey, command_key
from events.identity import payment_id_for
from events.records import (
    CommandDeduplicated,
    PaymentAccepted,
    PaymentMethod,
    PaymentRejected,
    RequestPayment,
)
from streams.intake import PaymentIntake
from streams.validation import ValidationPolicy
from tests.unit.samples import request_payment

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
POLICY = ValidationPolicy(max_amount_minor=10_000_000)
FIRST_ID = "6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41"
RETRY_ID = "0b4e7d52-90c3-4a8e-a1f5-7c2d9e3b6a18"
THIRD_ID = "f3a9c1d7-2b4e-4c6a-8e0f-1a2b3c4d5e6f"


def make_command(**changes) -> RequestPayment:
    plain = {
        "channel": None,
        "description": None,
        "device_id": None,
        "account_fingerprint": None,
        "metadata": {},
    }
    base = {"command_id": FIRST_ID, "issued_at": T0, "method": PaymentMethod.ALIPAY}
    return request_payment(**{**plain, **base, **changes})


def retry_of(command: RequestPayment, command_id: str = RETRY_ID, **changes) -> RequestPayment:
    """What an honest client sends again: a new command id and issue time, the same request."""
    return dataclasses.replace(
        command,
        command_id=command_id,
        issued_at=command.issued_at + timedelta(seconds=3),
        **changes,
    )


@pytest.fixture
def seen() -> dict:
    return {}


@pytest.fixture
def intake(seen) -> PaymentIntake:
    return PaymentIntake(POLICY, seen)


def test_first_command_is_decided(intake):
    command = make_command()
    outcome = intake.handle(command, T0)
    assert isinstance(outcome, PaymentAccepted)
    assert outcome.command_id == FIRST_ID
    assert outcome.payment_id == payment_id_for("shop-0042", "order-0000042-a1b2c3d4")


def test_first_invalid_command_is_decided_as_rejected(intake):
    assert isinstance(intake.handle(make_command(amount_minor=0), T0), PaymentRejected)


def test_honest_retry_is_deduplicated_and_matches(intake):
    first = intake.handle(make_command(), T0)
    repeat = intake.handle(retry_of(make_command()), T0 + timedelta(seconds=5))

    assert isinstance(repeat, CommandDeduplicated)
    assert repeat.request_matches is True
    assert repeat.original_command_id == FIRST_ID
    assert repeat.command_id == RETRY_ID
    assert repeat.payment_id == first.payment_id
    assert repeat.event_id != first.event_id
    assert repeat.merchant_id == "shop-0042"
    assert repeat.idempotency_key == "order-0000042-a1b2c3d4"


def test_retry_differing_only_in_descriptive_fields_still_matches(intake):
    intake.handle(make_command(), T0)
    repeat = intake.handle(
        retry_of(make_command(), description="retry", device_id="dev-2", metadata={"try": "2"}),
        T0,
    )
    assert isinstance(repeat, CommandDeduplicated)
    assert repeat.request_matches is True


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_minor": 64801},
        {"currency": "USD"},
        {"order_id": "ORD000000043"},
        {"user_id": "u000001"},
        {"method": PaymentMethod.CARD},
        {"channel": "card-3ds"},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_reused_key_for_a_different_request_is_flagged(intake, changes):
    intake.handle(make_command(), T0)
    repeat = intake.handle(retry_of(make_command(), **changes), T0)
    assert isinstance(repeat, CommandDeduplicated)
    assert repeat.request_matches is False
    assert repeat.original_command_id == FIRST_ID


def test_conflicting_repeat_does_not_change_the_original_decision(intake):
    original = make_command()
    first = intake.handle(original, T0)
    intake.handle(retry_of(original, amount_minor=99_999_999), T0)  # would be over the maximum

    # The original, redelivered, is decided exactly as before.
    again = intake.handle(original, T0 + timedelta(minutes=1))
    assert isinstance(again, PaymentAccepted)
    assert again.event_id == first.event_id
    assert again.amount_minor == 64800

    # A later honest retry is still compared with, and attributed to, the original.
    third = intake.handle(retry_of(original, command_id=THIRD_ID), T0)
    assert isinstance(third, CommandDeduplicated)
    assert third.original_command_id == FIRST_ID
    assert third.request_matches is True


def test_repeat_of_a_rejected_command_is_deduplicated_not_accepted(intake):
    intake.handle(make_command(amount_minor=0), T0)
    repeat = intake.handle(retry_of(make_command(amount_minor=0)), T0)
    assert isinstance(repeat, CommandDeduplicated)


def test_same_command_redelivered_is_decided_again_with_the_same_event_id(intake):
    command = make_command()
    first = intake.handle(command, T0)
    redelivered = intake.handle(command, T0 + timedelta(minutes=2))
    assert isinstance(redelivered, PaymentAccepted)
    assert redelivered.event_id == first.event_id
    assert redelivered.payment_id == first.payment_id


def test_redelivery_after_a_crash_that_kept_only_the_table_entry(seen):
    """The seen entry reached the changelog but the decision did not: decide it again."""
    command = make_command()
    before_crash = PaymentIntake(POLICY, seen).handle(command, T0)
    after_restart = PaymentIntake(POLICY, seen).handle(command, T0 + timedelta(minutes=1))
    assert isinstance(after_restart, PaymentAccepted)
    assert after_restart.event_id == before_crash.event_id


def test_redelivered_repeat_gets_the_same_deduplication_event_id(intake):
    intake.handle(make_command(), T0)
    repeat = retry_of(make_command())
    once = intake.handle(repeat, T0)
    twice = intake.handle(repeat, T0 + timedelta(seconds=30))
    assert isinstance(once, CommandDeduplicated)
    assert isinstance(twice, CommandDeduplicated)
    assert twice.event_id == once.event_id


def test_memory_survives_a_new_intake_over_the_same_table(seen):
    PaymentIntake(POLICY, seen).handle(make_command(), T0)
    repeat = PaymentIntake(POLICY, seen).handle(retry_of(make_command()), T0)
    assert isinstance(repeat, CommandDeduplicated)
    assert repeat.original_command_id == FIRST_ID


def test_same_key_at_different_merchants_are_independent_payments(intake):
    first = intake.handle(make_command(merchant_id="shop-0001"), T0)
    second = intake.handle(retry_of(make_command(merchant_id="shop-0002")), T0)
    assert isinstance(first, PaymentAccepted)
    assert isinstance(second, PaymentAccepted)
    assert first.payment_id != second.payment_id
    assert first.event_id != second.event_id


def test_different_keys_at_one_merchant_are_independent_payments(intake):
    first = intake.handle(make_command(), T0)
    second = intake.handle(retry_of(make_command(), idempotency_key="order-0000043-ffee0011"), T0)
    assert isinstance(second, PaymentAccepted)
    assert first.payment_id != second.payment_id


def test_a_command_is_keyed_by_its_payment_id_so_it_meets_its_payment_log_partition():
    command = make_command()
    retry = make_command(command_id=RETRY_ID, issued_at=T0 + timedelta(seconds=30))
    expected = payment_id_for(command.merchant_id, command.idempotency_key).encode()
    assert command_key(command) == command_key(retry) == expected
    other_merchant = make_command(merchant_id=command.merchant_id + "-b")
    assert command_key(other_merchant) != expected


def test_a_command_without_an_idempotency_key_cannot_be_keyed():
    with pytest.raises(MissingIdempotencyKey):
        command_key(make_command(idempotency_key=""))
