"""The demo's tally counts only its own batch, whatever else is on the log."""

from __future__ import annotations

from events.dead_letters import dead_letter_for
from events.records import CommandDeduplicated, PaymentAccepted, PaymentRejected
from events.wire import BadFraming
from paystream.demo.orders import realistic_batch
from paystream.demo.tally import BatchScope, LogTally
from streams.intake import PaymentIntake
from streams.validation import ValidationPolicy

TOPIC = "ns.payments.commands"


def outcomes(seed: int) -> tuple[list, list]:
    batch = realistic_batch(200, seed=seed)
    intake = PaymentIntake(ValidationPolicy(10_000_000), {})
    return batch.commands, [intake.handle(c, c.issued_at) for c in batch.commands]


def letter(partition: int, offset: int):
    return dead_letter_for(
        processor="intake",
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=b"k",
        payload=b"junk",
        error=BadFraming("bad"),
    )


def test_replayed_records_of_an_earlier_batch_are_left_out():
    ours, our_events = outcomes(seed=1)
    _, earlier_events = outcomes(seed=2)
    scope = BatchScope(frozenset(c.command_id for c in ours), TOPIC, {0: 100})
    tally = LogTally(scope)
    for event in earlier_events + our_events + earlier_events:
        tally.add(event)
    tally.add(letter(0, 99))  # poison of an earlier run, replayed
    tally.add(letter(0, 100))
    assert tally.processed == len(ours) + 1
    assert len(tally.dead_letters) == 1
    decided = {e.payment_id for e in our_events if isinstance(e, PaymentAccepted | PaymentRejected)}
    assert set(tally.decisions) == decided
    repeats = [e for e in our_events if isinstance(e, CommandDeduplicated)]
    assert repeats and len(tally.deduplicated) == len(repeats)


def test_without_a_scope_everything_counts():
    _, events = outcomes(seed=3)
    tally = LogTally()
    for event in events:
        tally.add(event)
    assert tally.processed == len(events)
