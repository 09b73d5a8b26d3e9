"""Risk cases: each payment gathered, decided once, held, released or rejected, and forgotten."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from events.identity import stage_event_id
from events.records import AvroRecord, ChargebackReceived, PaymentAccepted, PaymentRefunded
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureSnapshot,
    HoldResolution,
    MerchantOutcome,
    ReviewDecision,
    ReviewVerdict,
    RiskAssessed,
    RiskHoldResolved,
    RiskOutcome,
    RuleFiring,
)
from events.routing_records import PaymentFailed
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from streams.engine.outgoing import Outgoing
from streams.risk.assessment import epoch_ms
from streams.risk.cases import (
    DELAY_TIMER,
    TIMEOUT_DIMENSION,
    CaseDesk,
    NoOpenHold,
    merchant_outcome,
)
from streams.risk.feature_store import FeatureDesk
from streams.risk.state import RiskState
from tests.unit.samples import (
    ACCEPTED_AT,
    merchant_applied,
    merchant_reviewed,
    payment_accepted,
)

ZONE = ZoneInfo("Asia/Shanghai")
TOPICS = TopicCatalogue("t")
CODEC = EventCodec(ManifestSchemas())
PARTITION = 2
GATHER_MS = 5_000
RETENTION_MS = 600_000
T0 = ACCEPTED_AT
MERCHANT = "shop-0042"


def merchant_state(*records: AvroRecord) -> RiskState:
    """The default rule set live, and the merchant records given."""
    state = RiskState()
    for record in records:
        state.apply(record)
    return state


def a_rated() -> RiskState:
    return merchant_state(merchant_applied(MERCHANT), merchant_reviewed(MERCHANT, "A"))


class Bench:
    """A case desk and the feature store it talks to, wired by hand the way the worker wires
    them: requests go to the store, the store's snapshots come back to the desk."""

    def __init__(self, state: RiskState | None = None) -> None:
        self.state = state or a_rated()
        self.cases: dict = {}
        self.features: dict = {}
        self.desk = CaseDesk(self.cases, self.state, CODEC, TOPICS, ZONE, GATHER_MS, RETENTION_MS)
        self.store = FeatureDesk(self.features, TOPICS)
        self.offset = 0  # the features topic, as if it had one partition

    def restart(self) -> CaseDesk:
        """A new desk over the same table: what a worker restarting after a crash has."""
        self.desk = CaseDesk(self.cases, self.state, CODEC, TOPICS, ZONE, GATHER_MS, RETENTION_MS)
        return self.desk

    def snapshots(self, requests: list[Outgoing]) -> list[FeatureSnapshot]:
        """The feature store's answers to the fan-out (and any releases) in ``requests``."""
        answers: list[FeatureSnapshot] = []
        for out in requests:
            assert out.topic == TOPICS.risk_features.name
            self.offset += 1
            if isinstance(out.record, FeatureRequest):
                answers += only(self.store.on_request(out.record, self.offset), FeatureSnapshot)
            else:
                assert isinstance(out.record, FeatureRelease)
                self.store.on_release(out.record, self.offset)
        return answers

    def decide(self, accepted: PaymentAccepted, now: datetime | None = None) -> list[Outgoing]:
        """Open the case, gather every snapshot, and return what the decision sent."""
        now = now or accepted.occurred_at
        snapshots = self.snapshots(self.desk.on_accepted(accepted, PARTITION, now))
        outgoing: list[Outgoing] = []
        for snapshot in snapshots:
            assert not outgoing, "decided before the last snapshot"
            outgoing = self.desk.on_snapshot(snapshot, now)
        return outgoing

    def settle(self, outgoing: list[Outgoing]) -> None:
        """Deliver the feature releases in ``outgoing`` to the store."""
        self.snapshots([out for out in outgoing if isinstance(out.record, FeatureRelease)])


def only(outgoing: list[Outgoing], kind: type) -> list:
    return [out.record for out in outgoing if isinstance(out.record, kind)]


def assessed_in(outgoing: list[Outgoing]) -> RiskAssessed:
    (assessed,) = only(outgoing, RiskAssessed)
    return assessed


def resolved_in(outgoing: list[Outgoing]) -> RiskHoldResolved:
    (resolved,) = only(outgoing, RiskHoldResolved)
    return resolved


def review(
    accepted: PaymentAccepted, verdict: ReviewVerdict, reviewer: str = "review:chen.jing"
) -> ReviewDecision:
    return ReviewDecision(
        command_id="3c9e1f42-7a6b-4d8e-9f01-2b3c4d5e6f70",
        payment_id=accepted.payment_id,
        issued_at=T0 + timedelta(minutes=20),
        verdict=verdict,
        reviewer=reviewer,
        reason="called the user; the purchase is genuine"
        if verdict is ReviewVerdict.APPROVE
        else "card reported stolen by the issuer",
    )


def blind_first_payment(**changes) -> PaymentAccepted:
    """A new user's first payment with neither a device nor an IP: the default rules hold it
    for review (a server-side script, not the app)."""
    fields = {
        "idempotency_key": "order-blind-0001",
        "user_id": "u008802",
        "device_id": None,
        "client_ip": None,
    }
    return payment_accepted(**{**fields, **changes})


def taken_over_payment(bench: Bench) -> PaymentAccepted:
    """A user with three ordinary payments on their phone, then seven times the usual amount
    from a device never seen before: the default rules delay it 30 s."""
    for day in (3, 2, 1):
        at = T0 - timedelta(days=day)
        earlier = payment_accepted(at=at, idempotency_key=f"order-usual-{day}", amount_minor=6_800)
        assert assessed_in(bench.decide(earlier)).outcome is RiskOutcome.APPROVE
    return payment_accepted(
        idempotency_key="order-takeover-1", amount_minor=50_000, device_id="dev-unknown-77"
    )


def delayed(bench: Bench) -> tuple[PaymentAccepted, RiskAssessed]:
    accepted = taken_over_payment(bench)
    assessed = assessed_in(bench.decide(accepted, T0))
    assert assessed.outcome is RiskOutcome.DELAY, assessed.fired
    return accepted, assessed


# --- fan-out and the first decision -----------------------------------------------------------


def test_ordinary_payment_is_fanned_out_to_exactly_the_dimensions_it_carries():
    accepted = payment_accepted()
    desk = Bench().desk

    requests = desk.on_accepted(accepted, PARTITION, T0)

    assert [(out.topic, out.key) for out in requests] == [
        (TOPICS.risk_features.name, b"user:u004711"),
        (TOPICS.risk_features.name, b"device:dev-00ab12cd34"),
        (TOPICS.risk_features.name, b"ip:10.1.2.3"),
        (TOPICS.risk_features.name, b"account:sha256:4f2a9c"),
        (TOPICS.risk_features.name, b"merchant:shop-0042"),
    ]
    for out in requests:
        request = out.record
        assert isinstance(request, FeatureRequest)
        assert request.payment_id == accepted.payment_id
        assert (request.amount_minor, request.currency) == (64_800, "CNY")
        assert request.at_ms == epoch_ms(accepted.occurred_at)
        assert request.business_date == "2024-05-01"  # 20:00 in Shanghai
    device = requests[1].record
    assert isinstance(device, FeatureRequest)
    assert device.partners == {"user": "u004711", "account": "sha256:4f2a9c"}


def test_payment_without_device_or_ip_is_fanned_out_to_the_other_three():
    requests = Bench().desk.on_accepted(blind_first_payment(), PARTITION, T0)
    assert [out.key for out in requests] == [
        b"user:u008802",
        b"account:sha256:4f2a9c",
        b"merchant:shop-0042",
    ]


def test_ordinary_payment_at_an_a_rated_merchant_is_approved_after_its_last_snapshot():
    bench = Bench()
    accepted = payment_accepted()

    outgoing = bench.decide(accepted)

    assert [(out.topic, out.key) for out in outgoing] == [
        (TOPICS.events.name, accepted.payment_id.encode()),
        (TOPICS.risk_outcomes.name, MERCHANT.encode()),
    ]
    assessed = assessed_in(outgoing)
    assert assessed.outcome is RiskOutcome.APPROVE
    assert assessed.fired == []
    assert assessed.hold_until is None
    assert assessed.merchant_rating == "A"
    assert assessed.ruleset_version == bench.state.ruleset.version
    assert assessed.ruleset_digest == bench.state.ruleset.digest
    assert (assessed.amount_minor, assessed.currency) == (64_800, "CNY")
    # The explanation holds every feature the rules could read, as they were.
    assert assessed.features["amount"] == 64_800
    assert assessed.features["device.present"] is True
    assert assessed.features["user.first_seen"] is True
    assert assessed.features["user.payments_1m"] == 1
    (health,) = only(outgoing, MerchantOutcome)
    assert health.kinds == ["payments", "approved"]
    assert health.source_event_id == assessed.event_id


def test_a_decision_of_the_same_payment_carries_the_same_event_id_every_time():
    accepted = payment_accepted()
    first = assessed_in(Bench().decide(accepted))
    # A worker that lost its tables decides the payment again: consumers must see a repeat.
    again = assessed_in(Bench().decide(accepted, T0 + timedelta(seconds=40)))
    other = assessed_in(Bench().decide(payment_accepted(idempotency_key="order-0000043-b")))

    assert first.event_id == again.event_id == stage_event_id(accepted.payment_id, "risk")
    assert other.event_id != first.event_id


@pytest.mark.parametrize(
    ("records", "status"),
    [
        pytest.param((), "UNKNOWN", id="never-applied"),
        pytest.param((merchant_applied(MERCHANT),), "APPLIED", id="applied-only"),
        pytest.param(
            (merchant_applied(MERCHANT), merchant_reviewed(MERCHANT, refused=True)),
            "REFUSED",
            id="refused",
        ),
    ],
)
def test_payment_at_a_merchant_not_approved_is_rejected_naming_its_status(records, status):
    accepted = payment_accepted()

    outgoing = Bench(merchant_state(*records)).decide(accepted)

    assessed = assessed_in(outgoing)
    assert assessed.outcome is RiskOutcome.REJECT
    assert assessed.fired == [
        RuleFiring(
            rule="merchant.not_approved",
            outcome=RiskOutcome.REJECT,
            delay_seconds=0,
            inputs={"merchant.status": status},
        )
    ]
    assert assessed.merchant_rating is None
    # The amount the feature store reserved comes back from every daily total.
    releases = only(outgoing, FeatureRelease)
    assert {(r.dimension, r.value) for r in releases} == {
        ("user", "u004711"),
        ("device", "dev-00ab12cd34"),
        ("ip", "10.1.2.3"),
        ("account", "sha256:4f2a9c"),
        ("merchant", MERCHANT),
    }
    (health,) = only(outgoing, MerchantOutcome)
    assert health.kinds == ["payments", "declines"]


# --- redelivery -------------------------------------------------------------------------------


def test_redelivered_payment_is_not_fanned_out_again_while_gathering_or_after_the_decision():
    bench = Bench()
    accepted = payment_accepted()
    snapshots = bench.snapshots(bench.desk.on_accepted(accepted, PARTITION, T0))

    assert bench.desk.on_accepted(accepted, PARTITION, T0 + timedelta(seconds=1)) == []

    for snapshot in snapshots:
        outgoing = bench.desk.on_snapshot(snapshot, T0)
    assert assessed_in(outgoing).outcome is RiskOutcome.APPROVE
    assert bench.desk.on_accepted(accepted, PARTITION, T0 + timedelta(seconds=2)) == []


def test_the_same_dimension_twice_does_not_complete_the_gathering():
    bench = Bench()
    snapshots = bench.snapshots(bench.desk.on_accepted(payment_accepted(), PARTITION, T0))
    user = snapshots[0]
    assert bench.desk.on_snapshot(user, T0) == []
    assert bench.desk.on_snapshot(user, T0) == []
    for snapshot in snapshots[1:-1]:
        assert bench.desk.on_snapshot(snapshot, T0) == []
    assert assessed_in(bench.desk.on_snapshot(snapshots[-1], T0)).outcome is RiskOutcome.APPROVE


def test_a_snapshot_repeated_after_the_decision_changes_nothing():
    bench = Bench()
    accepted = payment_accepted()
    snapshots = bench.snapshots(bench.desk.on_accepted(accepted, PARTITION, T0))
    for snapshot in snapshots:
        bench.desk.on_snapshot(snapshot, T0)
    decided = copy.deepcopy(bench.cases)

    later = T0 + timedelta(seconds=3)
    assert bench.desk.on_snapshot(snapshots[2], later) == []
    timeout = FeatureSnapshot(
        payment_id=accepted.payment_id, dimension=TIMEOUT_DIMENSION, features={}
    )
    assert bench.desk.on_snapshot(timeout, later) == []
    assert bench.cases == decided


# --- review holds -----------------------------------------------------------------------------


def test_review_hold_waits_for_a_person_and_is_released_by_an_approve():
    bench = Bench()
    accepted = blind_first_payment()

    assessed = assessed_in(bench.decide(accepted))
    assert assessed.outcome is RiskOutcome.REVIEW
    assert [firing.rule for firing in assessed.fired] == ["blind_first_payment"]
    assert assessed.hold_until is None
    assert bench.desk.nudges(epoch_ms(T0 + timedelta(days=2))) == []  # no timer on a person

    decided_at = T0 + timedelta(minutes=20)
    outgoing = bench.desk.on_review(review(accepted, ReviewVerdict.APPROVE), decided_at)

    resolved = resolved_in(outgoing)
    assert resolved == RiskHoldResolved(
        event_id=stage_event_id(accepted.payment_id, "risk-hold"),
        payment_id=accepted.payment_id,
        occurred_at=decided_at,
        merchant_id=MERCHANT,
        amount_minor=64_800,
        currency="CNY",
        hold=RiskOutcome.REVIEW,
        resolution=HoldResolution.RELEASED,
        resolved_by="review:chen.jing",
        reason="called the user; the purchase is genuine",
    )
    assert outgoing[0].topic == TOPICS.events.name
    assert outgoing[0].key == accepted.payment_id.encode()
    assert only(outgoing, FeatureRelease) == []
    (health,) = only(outgoing, MerchantOutcome)
    assert health.kinds == ["approved"]

    with pytest.raises(NoOpenHold):
        bench.desk.on_review(review(accepted, ReviewVerdict.REJECT), decided_at)


def test_review_of_a_payment_never_held_raises_no_open_hold():
    bench = Bench()
    approved = payment_accepted()
    bench.decide(approved)
    with pytest.raises(NoOpenHold):
        bench.desk.on_review(review(approved, ReviewVerdict.APPROVE), T0)
    with pytest.raises(NoOpenHold):
        bench.desk.on_review(
            review(payment_accepted(idempotency_key="nope"), ReviewVerdict.REJECT), T0
        )


def test_rejected_review_gives_the_amount_back_on_the_payments_business_date():
    bench = Bench()
    # 01:30 on 2 May in Shanghai: the business day is not the UTC date.
    late_evening_utc = datetime(2024, 5, 1, 17, 30, tzinfo=UTC)
    accepted = blind_first_payment(at=late_evening_utc, amount_minor=25_000)
    assert assessed_in(bench.decide(accepted)).outcome is RiskOutcome.REVIEW

    outgoing = bench.desk.on_review(review(accepted, ReviewVerdict.REJECT), late_evening_utc)

    resolved = resolved_in(outgoing)
    assert resolved.resolution is HoldResolution.REJECTED
    assert resolved.resolved_by == "review:chen.jing"
    assert resolved.reason == "card reported stolen by the issuer"
    releases = [out for out in outgoing if isinstance(out.record, FeatureRelease)]
    assert [(out.topic, out.key) for out in releases] == [
        (TOPICS.risk_features.name, b"user:u008802"),
        (TOPICS.risk_features.name, b"account:sha256:4f2a9c"),
        (TOPICS.risk_features.name, f"merchant:{MERCHANT}".encode()),
    ]
    for out in releases:
        assert out.record == FeatureRelease(
            payment_id=accepted.payment_id,
            dimension=out.record.dimension,
            value=out.record.value,
            business_date="2024-05-02",
            amount_minor=25_000,
            currency="CNY",
        )
    (health,) = only(outgoing, MerchantOutcome)
    assert health.kinds == ["declines"]

    # The user's next payment that day no longer counts the rejected amount.
    bench.settle(outgoing)
    following = payment_accepted(
        at=late_evening_utc + timedelta(minutes=5),
        idempotency_key="order-next-0002",
        user_id="u008802",
    )
    assert assessed_in(bench.decide(following)).features["user.daily_amount"] == 0


# --- delay holds ------------------------------------------------------------------------------


def test_delay_hold_is_released_when_its_time_runs_out():
    bench = Bench()
    accepted, assessed = delayed(bench)
    assert [firing.rule for firing in assessed.fired] == ["new_device_large_amount"]
    assert assessed.hold_until == T0 + timedelta(seconds=30)
    until_ms = epoch_ms(T0 + timedelta(seconds=30))

    assert bench.desk.nudges(until_ms - 1) == []
    (nudge,) = bench.desk.nudges(until_ms)

    assert nudge.topic == TOPICS.reviews.name
    assert nudge.key == accepted.payment_id.encode()
    command = nudge.record
    assert isinstance(command, ReviewDecision)
    assert command.verdict is ReviewVerdict.APPROVE
    assert command.reviewer == DELAY_TIMER
    assert command.payment_id == accepted.payment_id

    released_at = T0 + timedelta(seconds=30, milliseconds=80)
    outgoing = bench.desk.on_review(command, released_at)
    resolved = resolved_in(outgoing)
    assert resolved.hold is RiskOutcome.DELAY
    assert resolved.resolution is HoldResolution.RELEASED
    assert resolved.resolved_by == DELAY_TIMER
    assert only(outgoing, FeatureRelease) == []

    # A second copy of the timer's command (a nudge sent twice) is ignored, not an error.
    assert bench.desk.on_review(command, released_at) == []
    assert bench.desk.nudges(until_ms + 60_000) == []


def test_delay_expired_command_is_the_same_each_time_it_is_sent():
    bench = Bench()
    accepted, _ = delayed(bench)
    until_ms = epoch_ms(T0 + timedelta(seconds=30))
    (first,) = bench.desk.nudges(until_ms)
    # Not acted on (the message was lost): the desk nudges again later, as the same command.
    assert bench.desk.nudges(until_ms + 1) == []
    (second,) = bench.desk.nudges(until_ms + GATHER_MS)
    assert isinstance(first.record, ReviewDecision)
    assert isinstance(second.record, ReviewDecision)
    assert first.record.command_id == second.record.command_id
    assert first.record.payment_id == second.record.payment_id == accepted.payment_id


def test_delayed_payment_is_rejected_when_its_merchant_is_refused_meanwhile():
    bench = Bench()
    accepted, _ = delayed(bench)
    (nudge,) = bench.desk.nudges(epoch_ms(T0 + timedelta(seconds=30)))
    assert isinstance(nudge.record, ReviewDecision)

    bench.state.apply(merchant_reviewed(MERCHANT, refused=True, at=T0 + timedelta(seconds=10)))
    outgoing = bench.desk.on_review(nudge.record, T0 + timedelta(seconds=31))

    resolved = resolved_in(outgoing)
    assert resolved.payment_id == accepted.payment_id
    assert resolved.hold is RiskOutcome.DELAY
    assert resolved.resolution is HoldResolution.REJECTED
    assert resolved.resolved_by == "merchant-status"
    assert {release.dimension for release in only(outgoing, FeatureRelease)} == {
        "user",
        "device",
        "ip",
        "account",
        "merchant",
    }
    assert all(r.amount_minor == 50_000 for r in only(outgoing, FeatureRelease))


def test_reviewer_can_reject_a_delayed_payment_before_its_time_runs_out():
    bench = Bench()
    accepted, _ = delayed(bench)
    outgoing = bench.desk.on_review(
        review(accepted, ReviewVerdict.REJECT), T0 + timedelta(seconds=12)
    )
    assert resolved_in(outgoing).resolution is HoldResolution.REJECTED
    # The timer is gone with the hold: nothing is sent when the delay would have run out.
    assert bench.desk.nudges(epoch_ms(T0 + timedelta(seconds=30))) == []


# --- gathering timeout ------------------------------------------------------------------------


def test_missing_snapshot_leads_to_review_naming_the_missing_dimension():
    bench = Bench()
    accepted = payment_accepted()
    snapshots = bench.snapshots(bench.desk.on_accepted(accepted, PARTITION, T0))
    late_ip = next(s for s in snapshots if s.dimension == "ip")
    for snapshot in snapshots:
        if snapshot is not late_ip:
            assert bench.desk.on_snapshot(snapshot, T0) == []
    opened_ms = epoch_ms(T0)

    assert bench.desk.nudges(opened_ms + GATHER_MS - 1) == []
    (nudge,) = bench.desk.nudges(opened_ms + GATHER_MS)
    assert nudge.topic == TOPICS.risk_snapshots.name
    assert nudge.key == accepted.payment_id.encode()
    assert nudge.record == FeatureSnapshot(
        payment_id=accepted.payment_id, dimension=TIMEOUT_DIMENSION, features={}
    )

    outgoing = bench.desk.on_snapshot(nudge.record, T0 + timedelta(seconds=5))
    assessed = assessed_in(outgoing)
    assert assessed.outcome is RiskOutcome.REVIEW
    assert assessed.fired[0] == RuleFiring(
        rule="risk.features_missing",
        outcome=RiskOutcome.REVIEW,
        delay_seconds=0,
        inputs={"missing": "ip"},
    )
    assert assessed.features["ip.present"] is False
    assert assessed.features["device.present"] is True
    # The snapshot arriving after the decision does not decide again.
    assert bench.desk.on_snapshot(late_ip, T0 + timedelta(seconds=6)) == []


def test_lost_timeout_nudge_is_sent_again_a_timeout_later():
    bench = Bench()
    accepted = payment_accepted()
    bench.desk.on_accepted(accepted, PARTITION, T0)  # no snapshot ever comes back
    due_ms = epoch_ms(T0) + GATHER_MS
    assert len(bench.desk.nudges(due_ms)) == 1
    assert bench.desk.nudges(due_ms + GATHER_MS - 1) == []
    (again,) = bench.desk.nudges(due_ms + GATHER_MS)
    assert isinstance(again.record, FeatureSnapshot)
    assessed = assessed_in(bench.desk.on_snapshot(again.record, T0 + timedelta(seconds=10)))
    assert assessed.fired[0].inputs == {"missing": "user,device,ip,account,merchant"}


# --- restart ----------------------------------------------------------------------------------


def test_reindex_after_a_restart_restores_the_gathering_and_delay_timers():
    bench = Bench()
    delayed_payment, _ = delayed(bench)
    held_for_review = blind_first_payment()
    assert assessed_in(bench.decide(held_for_review)).outcome is RiskOutcome.REVIEW
    gathering = payment_accepted(idempotency_key="order-gathering-9")
    opened = T0 + timedelta(seconds=2)
    bench.desk.on_accepted(gathering, PARTITION, opened)

    desk = bench.restart()
    far = epoch_ms(T0 + timedelta(hours=1))
    assert desk.nudges(far) == [], "a fresh desk knows no timers until it reindexes"
    desk = bench.restart()
    desk.reindex()

    (timeout,) = desk.nudges(epoch_ms(opened) + GATHER_MS)
    assert timeout.record == FeatureSnapshot(
        payment_id=gathering.payment_id, dimension=TIMEOUT_DIMENSION, features={}
    )
    # Acting on it works from what the table kept.
    outgoing = desk.on_snapshot(timeout.record, T0 + timedelta(seconds=7))
    assert assessed_in(outgoing).payment_id == gathering.payment_id

    (expired,) = desk.nudges(epoch_ms(T0 + timedelta(seconds=30)))
    assert isinstance(expired.record, ReviewDecision)
    assert expired.record.payment_id == delayed_payment.payment_id
    resolved = resolved_in(desk.on_review(expired.record, T0 + timedelta(seconds=30)))
    assert resolved.resolution is HoldResolution.RELEASED
    # The payment held for a person still waits for one.
    assert desk.nudges(far) == []
    released = desk.on_review(review(held_for_review, ReviewVerdict.APPROVE), T0)
    assert resolved_in(released).payment_id == held_for_review.payment_id


# --- purge ------------------------------------------------------------------------------------


def test_closed_cases_are_forgotten_after_the_retention_and_not_before():
    bench = Bench()
    approved = payment_accepted()
    closed_at = T0 + timedelta(seconds=1)
    bench.decide(approved, closed_at)
    held = blind_first_payment()
    bench.decide(held, closed_at)
    closed_ms = epoch_ms(closed_at)

    assert bench.desk.purge(PARTITION, closed_ms + RETENTION_MS - 1) == []
    assert bench.desk.purge(PARTITION + 1, closed_ms + RETENTION_MS) == []
    assert bench.desk.purge(PARTITION, closed_ms + RETENTION_MS) == [approved.payment_id]
    assert bench.desk.purge(PARTITION, closed_ms + 10 * RETENTION_MS) == []
    # A payment still held is never forgotten, however long it waits.
    assert bench.cases[held.payment_id]["state"] == "held"


def test_a_case_closed_by_review_is_forgotten_a_retention_after_the_review():
    bench = Bench()
    held = blind_first_payment()
    bench.decide(held)
    reviewed_at = T0 + timedelta(hours=3)
    bench.desk.on_review(review(held, ReviewVerdict.APPROVE), reviewed_at)
    reviewed_ms = epoch_ms(reviewed_at)
    assert bench.desk.purge(PARTITION, reviewed_ms + RETENTION_MS - 1) == []
    assert bench.desk.purge(PARTITION, reviewed_ms + RETENTION_MS) == [held.payment_id]


def test_closed_cases_restored_after_a_restart_are_still_forgotten():
    bench = Bench()
    approved = payment_accepted()
    bench.decide(approved, T0)

    desk = bench.restart()
    desk.reindex()

    assert desk.purge(PARTITION, epoch_ms(T0) + RETENTION_MS) == [approved.payment_id]


# --- outcomes others wrote --------------------------------------------------------------------


def test_refunds_and_chargebacks_on_the_log_are_regrouped_by_merchant():
    desk = Bench().desk
    accepted = payment_accepted()
    refunded = PaymentRefunded(
        event_id="8a1b2c3d-4e5f-5a6b-8c7d-9e0f1a2b3c4d",
        payment_id=accepted.payment_id,
        occurred_at=T0 + timedelta(days=2),
        merchant_id=MERCHANT,
        refund_id="rf-000017",
        amount_minor=12_800,
        currency="CNY",
    )
    charged_back = ChargebackReceived(
        event_id="1f2e3d4c-5b6a-5978-8a6b-5c4d3e2f1a0b",
        payment_id=accepted.payment_id,
        occurred_at=T0 + timedelta(days=40),
        merchant_id=MERCHANT,
        chargeback_id="cb-7Q2M9X",
        amount_minor=64_800,
        currency="CNY",
        reason_code="4837",
    )

    (refund_out,) = desk.on_logged(refunded)
    (chargeback_out,) = desk.on_logged(charged_back)

    assert refund_out.topic == chargeback_out.topic == TOPICS.risk_outcomes.name
    assert refund_out.key == chargeback_out.key == MERCHANT.encode()
    assert refund_out.record == MerchantOutcome(
        merchant_id=MERCHANT,
        payment_id=accepted.payment_id,
        at_ms=epoch_ms(refunded.occurred_at),
        kinds=["refunds"],
        source_event_id=refunded.event_id,
    )
    assert isinstance(chargeback_out.record, MerchantOutcome)
    assert chargeback_out.record.kinds == ["chargebacks"]
    # Acceptances and the desk's own decisions are not regrouped a second time.
    assert desk.on_logged(accepted) == []
    assert desk.on_logged(assessed_in(Bench().decide(accepted))) == []


def test_a_channel_decline_counts_as_a_merchant_decline_and_other_failures_do_not():
    failed = dict(
        event_id="e-failed",
        payment_id="pay-1",
        occurred_at=ACCEPTED_AT,
        merchant_id="shop-0042",
        amount_minor=100,
        currency="CNY",
        detail="",
        channels_tried=["card"],
    )
    declined = merchant_outcome(PaymentFailed(**failed, reason_code="DECLINED"))
    assert declined is not None and declined.kinds == ["declines"]
    assert merchant_outcome(PaymentFailed(**failed, reason_code="NO_CHANNEL")) is None
