"""Demo order batches: reproducible, covering every rejection, consistent with the validator."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime

import pytest

from events.identity import idempotency_scope, payment_id_for
from events.records import (
    CommandDeduplicated,
    PaymentAccepted,
    PaymentRejected,
    RejectionReason,
    RequestPayment,
)
from events.schema_store import ManifestSchemas
from events.wire import DecodeError, EventCodec
from paystream.demo.orders import OrderBatch, realistic_batch
from streams.intake import PaymentIntake
from streams.validation import ValidationPolicy, validate_request

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FIXED_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def _scope(command: RequestPayment) -> str:
    return idempotency_scope(command.merchant_id, command.idempotency_key)


def _without_time(batch: OrderBatch) -> list[RequestPayment]:
    # issued_at follows the wall clock of the call; everything else must follow the seed.
    return [dataclasses.replace(command, issued_at=FIXED_TIME) for command in batch.commands]


def _originals(batch: OrderBatch) -> list[RequestPayment]:
    """The first command of every payment, in publish order."""
    first: dict[str, RequestPayment] = {}
    for command in batch.commands:
        first.setdefault(_scope(command), command)
    return list(first.values())


@pytest.fixture(scope="module")
def big_batch() -> OrderBatch:
    return realistic_batch(3000, seed=11, invalid_share=0.2, repeat_share=0.1)


def test_same_seed_gives_the_same_batch():
    one = realistic_batch(300, seed=5, invalid_share=0.2, repeat_share=0.1)
    two = realistic_batch(300, seed=5, invalid_share=0.2, repeat_share=0.1)
    assert _without_time(one) == _without_time(two)
    assert one.expected == two.expected
    assert (one.repeats, one.conflicting_repeats) == (two.repeats, two.conflicting_repeats)
    assert one.poison == two.poison


def test_different_seeds_give_different_batches():
    one = realistic_batch(50, seed=5)
    two = realistic_batch(50, seed=6)
    assert _without_time(one) != _without_time(two)


def test_batch_has_count_distinct_payments_plus_the_repeats(big_batch):
    assert len(big_batch.expected) == 3000
    assert len({_scope(command) for command in big_batch.commands}) == 3000
    assert len(big_batch.commands) == 3000 + big_batch.repeats
    assert big_batch.repeats == 300
    assert 0 < big_batch.conflicting_repeats < big_batch.repeats


def test_command_ids_are_unique_uuids(big_batch):
    ids = [command.command_id for command in big_batch.commands]
    assert len(set(ids)) == len(ids)


def test_expected_outcomes_cover_every_rejection_reason(big_batch):
    reasons = {outcome.reason for outcome in big_batch.expected.values() if not outcome.accepted}
    produced_by_validation = set(RejectionReason) - {RejectionReason.UNSPECIFIED}
    assert reasons == produced_by_validation


def test_invalid_share_is_roughly_respected(big_batch):
    assert 0.15 * 3000 < big_batch.invalid < 0.25 * 3000
    accepted = [outcome for outcome in big_batch.expected.values() if outcome.accepted]
    assert all(outcome.reason is None for outcome in accepted)


def test_every_repeat_comes_after_its_original(big_batch):
    plain = realistic_batch(3000, seed=11, invalid_share=0.2, repeat_share=0)
    original_ids = {command.command_id for command in plain.commands}
    position_of_original: dict[str, int] = {}
    repeats = 0
    for position, command in enumerate(big_batch.commands):
        if command.command_id in original_ids:
            position_of_original[_scope(command)] = position
        else:
            repeats += 1
            assert _scope(command) in position_of_original, (
                f"repeat {command.command_id} at {position} precedes its original"
            )
    assert repeats == big_batch.repeats


def test_expected_outcome_describes_the_original_command(big_batch):
    for command in _originals(big_batch):
        outcome = big_batch.expected[payment_id_for(command.merchant_id, command.idempotency_key)]
        assert outcome.amount_minor == command.amount_minor
        assert outcome.currency == command.currency


@pytest.mark.parametrize(
    "max_amount_minor",
    [
        10_000_000,
        600_000,
        100_000,
    ],
)
def test_validator_agrees_with_every_expected_outcome(max_amount_minor):
    batch = realistic_batch(
        3000, seed=3, invalid_share=0.2, repeat_share=0, max_amount_minor=max_amount_minor
    )
    policy = ValidationPolicy(max_amount_minor=max_amount_minor)
    for command in batch.commands:
        expected = batch.expected[payment_id_for(command.merchant_id, command.idempotency_key)]
        refusal = validate_request(command, policy)
        if expected.accepted:
            assert refusal is None, f"{command} refused: {refusal}"
        else:
            assert refusal is not None, f"{command} accepted, expected {expected.reason}"
            assert refusal.reason is expected.reason, refusal.detail


@pytest.mark.parametrize("overrides", [{"JPY": 10_000}, {"JPY": 20_000_000, "USD": 30_000}])
def test_validator_agrees_with_per_currency_maxima(overrides):
    batch = realistic_batch(
        3000,
        seed=3,
        invalid_share=0.2,
        repeat_share=0,
        max_amount_minor=600_000,
        max_amount_minor_by_currency=overrides,
    )
    policy = ValidationPolicy(600_000, overrides)
    for command in batch.commands:
        expected = batch.expected[payment_id_for(command.merchant_id, command.idempotency_key)]
        refusal = validate_request(command, policy)
        assert (refusal is None) == expected.accepted, f"{command}: {refusal}"
        if refusal is not None:
            assert refusal.reason is expected.reason, refusal.detail


def test_intake_over_the_whole_batch_gives_the_expected_decisions(big_batch):
    intake = PaymentIntake(ValidationPolicy(max_amount_minor=10_000_000), {})
    decisions: dict[str, PaymentAccepted | PaymentRejected] = {}
    deduplicated: list[CommandDeduplicated] = []
    for command in big_batch.commands:
        outcome = intake.handle(command, NOW)
        if isinstance(outcome, CommandDeduplicated):
            deduplicated.append(outcome)
        else:
            assert outcome.payment_id not in decisions, "a payment was decided twice"
            decisions[outcome.payment_id] = outcome

    assert decisions.keys() == big_batch.expected.keys()
    for payment_id, decision in decisions.items():
        expected = big_batch.expected[payment_id]
        assert isinstance(decision, PaymentAccepted) == expected.accepted
        assert decision.amount_minor == expected.amount_minor
        if isinstance(decision, PaymentRejected):
            assert decision.reason is expected.reason
    assert len(deduplicated) == big_batch.repeats
    mismatched = Counter(event.request_matches for event in deduplicated)[False]
    assert mismatched == big_batch.conflicting_repeats


def test_poison_messages_are_refused_by_the_decoder(big_batch):
    codec = EventCodec(ManifestSchemas())
    assert big_batch.poison
    for message in big_batch.poison:
        with pytest.raises(DecodeError):
            codec.decode(message)
