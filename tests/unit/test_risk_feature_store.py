"""The feature store: each payment counted once per dimension value, released when rejected."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from events.records import PaymentAccepted
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureSnapshot,
    FeatureValues,
    RiskOutcome,
)
from events.topics import TopicCatalogue
from streams.engine.outgoing import Outgoing
from streams.risk.assessment import assess, business_date, feature_requests
from streams.risk.feature_store import FeatureDesk
from streams.risk.merchants import MerchantProfile, MerchantStatus
from streams.risk.rule_file import parse_ruleset
from tests.unit.samples import payment_accepted

ZONE = ZoneInfo("Asia/Shanghai")
TOPICS = TopicCatalogue("t")
T0 = datetime(2024, 5, 1, 3, 15, tzinfo=UTC)  # 11:15 in Shanghai
DEVICE = "dev-00ab12cd34"


def device_request(
    payment: str, at: datetime, amount: int, user: str = "u004711", account: str = "sha256:4f2a9c"
) -> FeatureRequest:
    return FeatureRequest(
        payment_id=payment,
        dimension="device",
        value=DEVICE,
        at_ms=int(at.timestamp() * 1000),
        amount_minor=amount,
        currency="CNY",
        business_date=business_date(at, ZONE),
        partners={"user": user, "account": account},
    )


def snapshot_of(outgoing: list[Outgoing]) -> FeatureSnapshot:
    (out,) = outgoing
    assert isinstance(out.record, FeatureSnapshot)
    return out.record


def release_of(request: FeatureRequest) -> FeatureRelease:
    return FeatureRelease(
        payment_id=request.payment_id,
        dimension=request.dimension,
        value=request.value,
        business_date=request.business_date,
        amount_minor=request.amount_minor,
        currency=request.currency,
    )


def test_counts_add_up_over_the_payments_of_one_device():
    desk = FeatureDesk({}, TOPICS)
    requests = [
        device_request("p-1", T0, 300),
        device_request("p-2", T0 + timedelta(seconds=10), 500, user="u-friend-2"),
        device_request("p-3", T0 + timedelta(seconds=20), 200, account="sha256:77aa01"),
    ]

    features = [
        snapshot_of(desk.on_request(request, offset)).features
        for offset, request in enumerate(requests, start=100)
    ]

    assert [f["payments_1m"] for f in features] == [1, 2, 3]
    assert [f["amount_1m"] for f in features] == [300, 800, 1000]
    assert [f["payments_1d"] for f in features] == [1, 2, 3]
    assert [f["history_payments"] for f in features] == [0, 1, 2]
    assert [f["first_seen"] for f in features] == [True, False, False]
    # The daily total is what came before this payment; the limit check adds the payment.
    assert [f["daily_amount"] for f in features] == [0, 300, 800]
    assert [f["distinct_users_1h"] for f in features] == [1, 2, 2]
    assert [f["distinct_accounts_1h"] for f in features] == [1, 1, 2]
    assert features[2]["usual_amount"] == 400
    assert features[2]["amount_vs_usual_pct"] == 50


def test_snapshot_goes_back_to_the_payments_partition():
    (out,) = FeatureDesk({}, TOPICS).on_request(device_request("p-1", T0, 300), 7)
    assert out.topic == TOPICS.risk_snapshots.name
    assert out.key == b"p-1"
    assert isinstance(out.record, FeatureSnapshot)
    assert (out.record.payment_id, out.record.dimension) == ("p-1", "device")


def test_request_redelivered_at_an_applied_offset_is_not_counted_twice():
    entries: dict = {}
    desk = FeatureDesk(entries, TOPICS)
    first = device_request("p-1", T0, 300)
    last = device_request("p-2", T0 + timedelta(seconds=10), 500)
    desk.on_request(first, 41)
    answer = desk.on_request(last, 42)
    counted = copy.deepcopy(entries)

    # After a crash the partition is read again from before the committed offset.
    assert desk.on_request(first, 41) == []  # an older payment: its case decides on timeout
    assert desk.on_request(last, 42) == answer  # the newest: the same answer, sent again
    assert entries == counted

    following = snapshot_of(
        desk.on_request(device_request("p-3", T0 + timedelta(seconds=20), 100), 43)
    )
    assert following.features["payments_1m"] == 3
    assert following.features["daily_amount"] == 800


def test_a_payment_fanned_out_again_at_a_new_offset_is_not_counted_twice():
    """A command replayed after a crash, whose case never reached the changelog, sends its
    requests again: they arrive at new offsets, after the ones already counted."""
    entries: dict = {}
    desk = FeatureDesk(entries, TOPICS)
    desk.on_request(device_request("p-1", T0, 300), 41)
    answer = desk.on_request(device_request("p-2", T0 + timedelta(seconds=10), 500), 42)
    counted = copy.deepcopy(entries)

    again = desk.on_request(device_request("p-2", T0 + timedelta(seconds=10), 500), 57)

    assert again == answer
    assert entries == counted


def test_release_lowers_the_next_payments_daily_amount_once():
    desk = FeatureDesk({}, TOPICS)
    kept = device_request("p-1", T0, 1_000)
    rejected = device_request("p-2", T0 + timedelta(minutes=1), 2_000)
    desk.on_request(kept, 1)
    desk.on_request(rejected, 2)

    desk.on_release(release_of(rejected), 3)
    desk.on_release(release_of(rejected), 3)  # redelivered: already applied

    following = snapshot_of(
        desk.on_request(device_request("p-3", T0 + timedelta(minutes=2), 50), 4)
    )
    assert following.features["daily_amount"] == 1_000
    # Only the daily total is given back: the attempt still counts as velocity.
    assert following.features["payments_1h"] == 3


def test_release_of_a_value_never_seen_creates_nothing():
    entries: dict = {}
    FeatureDesk(entries, TOPICS).on_release(release_of(device_request("p-1", T0, 300)), 9)
    assert entries == {}


def test_daily_total_starts_again_at_midnight_in_the_business_time_zone():
    desk = FeatureDesk({}, TOPICS)
    evening = datetime(2024, 5, 1, 15, 50, tzinfo=UTC)  # 23:50 in Shanghai
    after_midnight = datetime(2024, 5, 1, 16, 10, tzinfo=UTC)  # 00:10 on 2 May, same UTC day
    desk.on_request(device_request("p-1", evening, 9_000), 1)
    following = snapshot_of(desk.on_request(device_request("p-2", after_midnight, 100), 2))
    assert following.features["daily_amount"] == 0
    assert following.features["payments_1h"] == 2


# --- the daily limit, end to end through the store and the rule engine -----------------------

DAILY_LIMIT_RULES = """\
version 12
# A user may spend 1000.00 CNY a day at a B-rated merchant.
limit B user_daily_amount CNY 1000.00
limit B single_payment    CNY  800.00
"""


class Store:
    """The feature store answering every dimension of a payment, at consecutive offsets."""

    def __init__(self) -> None:
        self.desk = FeatureDesk({}, TOPICS)
        self.offset = 0

    def snapshots(self, accepted: PaymentAccepted) -> dict[str, FeatureValues]:
        answers: dict[str, FeatureValues] = {}
        for request in feature_requests(accepted, ZONE):
            self.offset += 1
            answers[request.dimension] = snapshot_of(
                self.desk.on_request(request, self.offset)
            ).features
        return answers

    def release(self, accepted: PaymentAccepted) -> None:
        for request in feature_requests(accepted, ZONE):
            self.offset += 1
            self.desk.on_release(release_of(request), self.offset)


def test_user_crossing_the_daily_limit_is_rejected_on_exactly_the_crossing_payment():
    ruleset = parse_ruleset(DAILY_LIMIT_RULES)
    merchant = MerchantProfile("shop-0042", MerchantStatus.APPROVED, "B")
    store = Store()
    amounts = [30_000, 30_000, 30_000, 30_000, 10_000]
    decisions = []
    for number, amount in enumerate(amounts):
        at = T0 + timedelta(hours=2 * number)
        accepted = payment_accepted(
            at=at, idempotency_key=f"order-topup-{number}", amount_minor=amount
        )
        assessed = assess(accepted, merchant, store.snapshots(accepted), ruleset, at)
        decisions.append(assessed)
        if assessed.outcome is RiskOutcome.REJECT:
            store.release(accepted)

    # 300.00, 600.00, 900.00 pass; 1200.00 would not; the rejected 300.00 is given back, so
    # 100.00 more reaches the limit exactly and passes.
    assert [d.outcome for d in decisions] == [
        RiskOutcome.APPROVE,
        RiskOutcome.APPROVE,
        RiskOutcome.APPROVE,
        RiskOutcome.REJECT,
        RiskOutcome.APPROVE,
    ]
    assert [[f.rule for f in d.fired] for d in decisions] == [
        [],
        [],
        [],
        ["limit.user_daily_amount"],
        [],
    ]
    assert decisions[3].fired[0].inputs == {
        "user.daily_amount": 90_000,
        "amount": 30_000,
        "currency": "CNY",
        "limit": 100_000,
    }
    assert decisions[4].features["user.daily_amount"] == 90_000

    at = T0 + timedelta(days=1)
    tomorrow = payment_accepted(at=at, idempotency_key="order-topup-next", amount_minor=30_000)
    next_day = assess(tomorrow, merchant, store.snapshots(tomorrow), ruleset, at)
    assert next_day.outcome is RiskOutcome.APPROVE
    assert next_day.features["user.daily_amount"] == 0
