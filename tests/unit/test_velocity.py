"""Velocity state of the feature store: each feature's meaning, and a recount from scratch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.risk import velocity
from streams.risk.features import (
    DIMENSIONS,
    DISTINCT_WINDOWS,
    HEALTH_FEATURES,
    HEALTH_WINDOWS,
    PARTNERS,
    VELOCITY_WINDOWS,
    dimension_features,
)
from streams.risk.health_windows import HEALTH_KINDS, HealthWindows
from streams.risk.velocity import DimensionState, Observation, SlidingWindow

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)  # a bucket boundary of every window
FAST = settings(max_examples=300, deadline=None, database=None)


def business_date(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).date().isoformat()


def pay(at_ms, amount=1_000, currency="CNY", date=None, **partners):
    return Observation(at_ms, amount, currency, date or business_date(at_ms), partners)


def reloaded(state):
    return type(state).from_dict(json.loads(json.dumps(state.to_dict())))


# --- SlidingWindow ---


def test_window_width_must_split_into_sixty_buckets():
    assert SlidingWindow(60).bucket_ms == 1_000
    assert SlidingWindow(3_600).bucket_ms == 60_000
    assert SlidingWindow(86_400).bucket_ms == 1_440_000
    assert SlidingWindow(30 * 86_400).bucket_ms == 43_200_000
    for width in (0, 90, -60):
        with pytest.raises(ValueError, match="multiple of 60s"):
            SlidingWindow(width)


def test_window_counts_the_current_bucket_and_the_59_before_it():
    window = SlidingWindow(60)
    window.add(T0 + 500, amount=7)
    window.add(T0 + 900, count=2, amount=3)
    assert window.totals(T0 + 59_999) == (3, 10)
    # At T0+60s the window is buckets 1..60: bucket 0 has left, though less than 60 s passed.
    assert window.totals(T0 + 60_000) == (0, 0)


def test_window_prunes_buckets_no_later_window_can_count():
    window = SlidingWindow(60)
    for second in range(100):
        window.add(T0 + second * SECOND)
    assert len(window.indices) == 60
    assert window.totals(T0 + 99 * SECOND) == (60, 0)
    window.prune(T0 + 200 * SECOND)
    assert window.is_empty
    assert (window.count, window.amount) == (0, 0)


def test_window_refuses_time_going_backwards():
    window = SlidingWindow(60)
    window.add(T0 + 5 * SECOND + 999)
    window.add(T0 + 5 * SECOND)  # the same bucket is still the present
    with pytest.raises(ValueError, match="before the window's newest bucket"):
        window.add(T0 + 4 * SECOND)
    with pytest.raises(ValueError, match="before the window's newest bucket"):
        window.totals(T0)


def test_window_round_trips_through_json():
    window = SlidingWindow(3_600)
    window.add(T0, amount=5)
    window.add(T0 + 10 * MINUTE, count=3, amount=9)
    data = window.to_dict()
    assert data == {
        "width_s": 3_600,
        "index": [T0 // MINUTE, T0 // MINUTE + 10],
        "count": [1, 3],
        "sum": [5, 9],
    }
    copy = reloaded(window)
    assert copy == window
    assert copy.totals(T0 + HOUR) == (3, 9)


# --- DimensionState: one feature at a time ---


def test_features_are_exactly_the_catalogued_ones_for_every_dimension():
    for dimension in DIMENSIONS:
        features = DimensionState.new(dimension).observe(pay(T0, user="u", device="d"))
        prefix = f"{dimension}."
        catalogued = {name.removeprefix(prefix) for name in dimension_features(dimension)}
        assert set(features) == catalogued - {"present"}


def test_unknown_dimension_is_refused():
    with pytest.raises(ValueError, match="unknown dimension"):
        DimensionState.new("planet")


def test_card_testing_burst_is_seen_within_a_minute_then_slides_out():
    user = DimensionState.new("user")
    seen = [user.observe(pay(T0 + i * 3 * SECOND, 100))["payments_1m"] for i in range(10)]
    assert seen == list(range(1, 11))
    later = user.observe(pay(T0 + 2 * MINUTE, 100))
    assert (later["payments_1m"], later["amount_1m"]) == (1, 100)
    assert (later["payments_1h"], later["amount_1h"]) == (11, 1_100)
    assert later["payments_1d"] == 11


def test_amounts_are_summed_per_currency_while_counts_span_currencies():
    user = DimensionState.new("user")
    user.observe(pay(T0, 100, "CNY"))
    user.observe(pay(T0 + SECOND, 50, "USD"))
    cny = user.observe(pay(T0 + 2 * SECOND, 200, "CNY"))
    assert (cny["payments_1h"], cny["amount_1h"]) == (3, 300)
    usd = user.observe(pay(T0 + 3 * SECOND, 25, "USD"))
    assert (usd["payments_1m"], usd["amount_1m"]) == (4, 75)


def test_idle_currency_windows_are_forgotten_after_a_day():
    user = DimensionState.new("user")
    user.observe(pay(T0, 100, "USD"))
    user.observe(pay(T0 + 2 * DAY, 100, "CNY"))
    assert set(user.windows) == {"CNY"}


def test_first_seen_and_history_count_what_came_before():
    account = DimensionState.new("account")
    first = account.observe(pay(T0))
    second = account.observe(pay(T0 + 40 * DAY))
    assert (first["first_seen"], first["history_payments"]) == (True, 0)
    assert (second["first_seen"], second["history_payments"]) == (False, 1)
    assert second["payments_1d"] == 1  # the velocity windows forgot; the history does not


def test_usual_amount_is_the_floor_mean_of_earlier_payments_in_the_currency():
    user = DimensionState.new("user")
    first = user.observe(pay(T0, 100))
    assert (first["usual_amount"], first["amount_vs_usual_pct"]) == (0, 0)
    user.observe(pay(T0 + DAY, 301))
    third = user.observe(pay(T0 + 60 * DAY, 500))
    assert (third["usual_amount"], third["amount_vs_usual_pct"]) == (200, 250)
    other = user.observe(pay(T0 + 60 * DAY, 500, "USD"))
    assert (other["usual_amount"], other["amount_vs_usual_pct"]) == (0, 0)


def test_daily_amount_is_what_was_reserved_before_this_payment():
    user = DimensionState.new("user")
    assert user.observe(pay(T0, 300, date="2024-05-01"))["daily_amount"] == 0
    assert user.observe(pay(T0, 200, date="2024-05-01"))["daily_amount"] == 300
    assert user.observe(pay(T0, 999, "USD", date="2024-05-01"))["daily_amount"] == 0
    assert user.observe(pay(T0, 100, date="2024-05-02"))["daily_amount"] == 0
    assert user.observe(pay(T0, 100, date="2024-05-01"))["daily_amount"] == 500


def test_release_takes_back_a_rejected_payments_reservation():
    user = DimensionState.new("user")
    user.observe(pay(T0, 300, date="2024-05-01"))
    user.observe(pay(T0, 200, date="2024-05-01"))
    user.release("2024-05-01", "CNY", 200)
    assert user.reserved == {"2024-05-01": {"CNY": 300}}
    user.release("2024-05-01", "CNY", 1_000)  # never below zero
    user.release("2024-04-01", "CNY", 10)  # an unknown date is ignored
    user.release("2024-05-01", "USD", 10)
    assert user.observe(pay(T0, 100, date="2024-05-01"))["daily_amount"] == 0
    with pytest.raises(ValueError, match="negative"):
        user.release("2024-05-01", "CNY", -1)


def test_only_the_two_newest_business_dates_are_kept():
    user = DimensionState.new("user")
    for date in ("2024-05-02", "2024-05-01", "2024-05-03"):
        user.observe(pay(T0, 100, date=date))
    assert set(user.reserved) == {"2024-05-02", "2024-05-03"}
    # A payment dated before both kept dates cannot know its day: it sees and keeps nothing.
    assert user.observe(pay(T0, 100, date="2024-05-01"))["daily_amount"] == 0
    assert set(user.reserved) == {"2024-05-02", "2024-05-03"}


def test_distinct_accounts_per_device_expire_with_their_window():
    device = DimensionState.new("device")
    for i, account in enumerate(("a1", "a2", "a1", "a3")):
        features = device.observe(pay(T0 + i * MINUTE, account=account, user="u1"))
    assert (features["distinct_accounts_1h"], features["distinct_users_1h"]) == (3, 1)
    later = device.observe(pay(T0 + 2 * HOUR, account="a4"))
    assert (later["distinct_accounts_1h"], later["distinct_accounts_1d"]) == (1, 4)
    assert (later["distinct_users_1h"], later["distinct_users_1d"]) == (0, 1)
    # Exactly one day after a4 it has left the day window too (last seen must be < 1d ago).
    gone = device.observe(pay(T0 + 2 * HOUR + DAY, account="a5"))
    assert (gone["distinct_accounts_1h"], gone["distinct_accounts_1d"]) == (1, 1)
    assert device.seen == {"user": {}, "account": {"a5": T0 + 2 * HOUR + DAY}}


def test_merchant_tracks_no_partners():
    merchant = DimensionState.new("merchant")
    features = merchant.observe(pay(T0, user="u1", device="d1"))
    assert not any(name.startswith("distinct_") for name in features)
    assert merchant.seen == {}


def test_distinct_counts_saturate_at_the_cap():
    device = DimensionState.new("device")
    for i in range(velocity.DISTINCT_CAP + 5):
        features = device.observe(pay(T0 + i * SECOND, account=f"a{i}"))
    assert features["distinct_accounts_1h"] == velocity.DISTINCT_CAP
    assert "a0" not in device.seen["account"]
    # A returning value counts again and pushes out the least recently seen one instead.
    again = device.observe(pay(T0 + HOUR, account="a0"))
    assert again["distinct_accounts_1d"] == velocity.DISTINCT_CAP
    assert "a5" not in device.seen["account"]
    assert list(device.seen["account"])[-1] == "a0"


def test_a_late_event_counts_at_the_entrys_current_time():
    user = DimensionState.new("user")
    user.observe(pay(T0 + HOUR, 100, device="d1"))
    late = user.observe(pay(T0, 50, device="d2"))
    assert user.clock_ms == T0 + HOUR
    assert (late["payments_1m"], late["amount_1m"], late["distinct_devices_1h"]) == (2, 150, 2)
    assert user.seen["device"]["d2"] == T0 + HOUR


def test_state_round_trips_through_json_and_keeps_behaving_the_same():
    user = DimensionState.new("user")
    user.observe(pay(T0, 100, "CNY", device="d1", account="a1"))
    user.observe(pay(T0 + 30 * SECOND, 50, "USD", device="d2"))
    data = user.to_dict()
    copy = reloaded(user)
    assert copy == user
    assert copy.to_dict() == data
    assert json.loads(json.dumps(data)) == data
    step = pay(T0 + 45 * SECOND, 70, "USD", device="d1", account="a2")
    assert copy.observe(step) == user.observe(step)
    assert copy.to_dict() == user.to_dict()


def test_state_round_trips_through_its_changelog_row():
    user = DimensionState.new("user")
    for number, device in enumerate(["d9", "d1", "d5", "d1"]):  # not in sorted order
        user.observe(pay(T0 + number * SECOND, 100 + number, device=device, account="a1"))
    user.observe(pay(T0 + 9 * SECOND, 70, "USD"))
    copy = DimensionState.from_row(json.loads(json.dumps(user.to_row())))
    assert copy == user
    # The order of sightings decides which value is forgotten first: it must survive.
    assert list(copy.seen["device"]) == ["d9", "d5", "d1"]
    step = pay(T0 + 20 * SECOND, 70, "USD", device="d2", account="a2")
    assert copy.observe(step) == user.observe(step)


def test_health_round_trips_through_its_changelog_row():
    health = HealthWindows.new()
    health.record("payments", T0)
    health.record("declines", T0 + DAY)
    copy = HealthWindows.from_row(json.loads(json.dumps(health.to_row())))
    assert copy == health
    assert copy.features(T0 + DAY) == health.features(T0 + DAY)


def test_to_dict_layout():
    user = DimensionState.new("user")
    user.observe(pay(T0, 100, device="d1", date="2024-05-01"))
    assert user.to_dict() == {
        "dimension": "user",
        "clock_ms": T0,
        "payments": 1,
        "usual": {"CNY": [1, 100]},
        "reserved": {"2024-05-01": {"CNY": 100}},
        "windows": {
            "CNY": {
                suffix: {
                    "width_s": seconds,
                    "index": [T0 // (seconds * 1000 // 60)],
                    "count": [1],
                    "sum": [100],
                }
                for suffix, seconds in VELOCITY_WINDOWS.items()
            }
        },
        "seen": {
            "device": {"values": ["d1"], "last_seen_ms": [T0]},
            "account": {"values": [], "last_seen_ms": []},
        },
    }


# --- HealthWindows ---


def test_health_features_are_the_catalogued_ones():
    features = HealthWindows.new().features(T0)
    assert set(features) == set(HEALTH_FEATURES) - {"rating"}
    assert set(features.values()) == {0}


def test_health_ratios():
    health = HealthWindows.new()
    for i in range(40):
        health.record("payments", T0 + i * MINUTE)
        health.record("approved", T0 + i * MINUTE)
    for i in range(10):
        health.record("declines", T0 + 23 * HOUR + i * MINUTE)
        health.record("payments", T0 + 23 * HOUR + i * MINUTE)
    health.record("refunds", T0 + 23 * HOUR)
    health.record("chargebacks", T0 + 23 * HOUR)
    health.record("chargebacks", T0 + 23 * HOUR)
    features = health.features(T0 + 23 * HOUR + 30 * MINUTE)
    assert (features["payments_1h"], features["payments_1d"]) == (10, 50)
    assert features["decline_ratio_bp_1h"] == 10_000
    assert features["decline_spike_pct"] == 2_400
    assert features["refund_ratio_bp_30d"] == 250
    assert features["chargeback_ratio_bp_30d"] == 500
    assert features["volume_change_pct"] == 480


def test_health_refuses_unknown_kinds_and_reading_does_not_move_the_clock():
    health = HealthWindows.new()
    with pytest.raises(ValueError, match="unknown health event kind"):
        health.record("refund", T0)
    health.record("payments", T0 + HOUR)
    assert health.features(T0)["payments_1h"] == 1  # read at the clock, not before it
    health.features(T0 + DAY)
    assert health.clock_ms == T0 + HOUR
    health.record("payments", T0 + 2 * HOUR)
    assert health.features(0)["payments_1h"] == 1


def test_health_round_trips_through_json():
    health = HealthWindows.new()
    health.record("payments", T0)
    health.record("declines", T0 + DAY)
    copy = reloaded(health)
    assert copy == health
    assert copy.to_dict() == health.to_dict()
    assert copy.features(T0 + DAY) == health.features(T0 + DAY)


# --- Property tests: every feature equals a recount from the plain list of events ---


def in_window(event_ms: int, now_ms: int, width_seconds: int) -> bool:
    bucket_ms = width_seconds * 1000 // 60
    return now_ms // bucket_ms - 59 <= event_ms // bucket_ms <= now_ms // bucket_ms


@dataclass
class Seen:
    effective_ms: int
    observation: Observation
    released: bool = False


def usual_features(earlier: list[Seen], observation: Observation) -> dict[str, int | bool]:
    amounts = [
        s.observation.amount_minor
        for s in earlier
        if s.observation.currency == observation.currency
    ]
    usual = sum(amounts) // len(amounts) if amounts else 0
    return {
        "first_seen": not earlier,
        "history_payments": len(earlier),
        "usual_amount": usual,
        "amount_vs_usual_pct": observation.amount_minor * 100 // usual if usual else 0,
    }


def daily_amount(earlier: list[Seen], observation: Observation) -> int:
    # The entry holds a date iff it is one of the two newest dates seen so far.
    held = sorted({s.observation.business_date for s in earlier})[-2:]
    if observation.business_date not in held:
        return 0
    return sum(
        s.observation.amount_minor
        for s in earlier
        if not s.released
        and s.observation.business_date == observation.business_date
        and s.observation.currency == observation.currency
    )


def distinct_features(dimension: str, seen: list[Seen], now: int, cap: int) -> dict[str, int]:
    features = {}
    for partner in PARTNERS[dimension]:
        last: dict[str, int] = {}
        for s in seen:
            value = s.observation.partners.get(partner)
            if value is not None:
                last.pop(value, None)
                last[value] = s.effective_ms
        # Evictions drop the least recently seen, so the entry holds the `cap` newest values.
        kept = list(last.values())[-cap:]
        for suffix, seconds in DISTINCT_WINDOWS.items():
            within = sum(1 for at in kept if now - at < seconds * 1000)
            features[f"distinct_{partner}s_{suffix}"] = within
    return features


def recount(dimension: str, seen: list[Seen], cap: int) -> dict[str, int | bool]:
    *earlier, current = seen
    observation, now = current.observation, current.effective_ms
    features = usual_features(earlier, observation)
    features["daily_amount"] = daily_amount(earlier, observation)
    for suffix, seconds in VELOCITY_WINDOWS.items():
        inside = [s.observation for s in seen if in_window(s.effective_ms, now, seconds)]
        features[f"payments_{suffix}"] = len(inside)
        features[f"amount_{suffix}"] = sum(
            o.amount_minor for o in inside if o.currency == observation.currency
        )
    features.update(distinct_features(dimension, seen, now, cap))
    return features


SPAN = 4 * DAY
BOUNDARY_STEPS = [SECOND, MINUTE, 1_440_000, HOUR, DAY, -MINUTE, -1, 1, 0]
time_steps = st.one_of(
    st.integers(-1_500, 1_500),
    st.integers(-90 * SECOND, 90 * SECOND),
    st.sampled_from(BOUNDARY_STEPS),
    st.integers(-3 * HOUR, 6 * HOUR),
    st.integers(0, DAY + HOUR),
)
partner_values = st.sampled_from(["a", "b", "c", "d", "e"])
partner_maps = st.fixed_dictionaries(
    {}, optional={"user": partner_values, "device": partner_values, "account": partner_values}
)
payment_steps = st.tuples(
    st.just("pay"),
    time_steps,
    st.integers(1, 5_000),
    st.sampled_from(["CNY", "USD", "EUR"]),
    partner_maps,
    # Business dates are the caller's: mostly the event's UTC date, sometimes an earlier one.
    st.sampled_from([0, 0, 0, -DAY, -2 * DAY]),
)
state_steps = st.lists(
    st.one_of(
        payment_steps,
        payment_steps,
        payment_steps,
        st.tuples(st.just("release"), st.integers(0, 1_000)),
        st.just(("reload",)),
    ),
    min_size=10,
    max_size=50,
)


def clamp(at_ms: int) -> int:
    return min(max(at_ms, T0), T0 + SPAN)


@FAST
@given(
    st.sampled_from(DIMENSIONS),
    st.sampled_from([2, 3, velocity.DISTINCT_CAP]),
    st.integers(0, DAY),
    state_steps,
)
def test_every_feature_equals_a_recount(dimension, cap, start, steps):
    state, seen, at = DimensionState.new(dimension), [], T0 + start
    with mock.patch.object(velocity, "DISTINCT_CAP", cap):
        for step in steps:
            if step[0] == "pay":
                _, delta, amount, currency, partners, date_shift = step
                at = clamp(at + delta)
                date = business_date(at + date_shift)
                observation = Observation(at, amount, currency, date, partners)
                clock = max([at] + [s.effective_ms for s in seen])
                seen.append(Seen(clock, observation))
                assert state.observe(observation) == recount(dimension, seen, cap)
            elif step[0] == "release":
                unreleased = [s for s in seen if not s.released]
                if unreleased:
                    rejected = unreleased[step[1] % len(unreleased)]
                    rejected.released = True
                    o = rejected.observation
                    state.release(o.business_date, o.currency, o.amount_minor)
            elif step[0] == "reload":
                before = state.to_dict()
                state = reloaded(state)
                assert state.to_dict() == before


window_steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "totals", "prune", "reload"]),
        st.one_of(
            st.integers(0, 2_000),
            st.integers(0, 2 * HOUR),
            st.integers(0, 3 * DAY),
            st.sampled_from([0, 1_000, 60_000, 1_440_000, 43_200_000]),
        ),
        st.integers(0, 3),
        st.integers(0, 1_000),
    ),
    min_size=10,
    max_size=60,
)


@FAST
@given(st.sampled_from([60, 3_600, 86_400, 30 * 86_400]), window_steps)
def test_sliding_window_equals_a_recount(width, steps):
    window, added, at = SlidingWindow(width), [], T0
    for kind, delta, count, amount in steps:
        at += delta
        if kind == "add":
            window.add(at, count, amount)
            added.append((at, count, amount))
        elif kind == "reload":
            window = reloaded(window)
        inside = [(c, a) for t, c, a in added if in_window(t, at, width)]
        expected = (sum(c for c, _ in inside), sum(a for _, a in inside))
        assert window.totals(at) == expected
        if kind in ("add", "prune"):
            window.prune(at)
            assert (window.count, window.amount) == expected
        assert len(window.indices) <= 60


def health_recount(records: list[tuple[str, int]], now: int) -> dict[str, int]:
    counts = {
        f"{kind}_{suffix}": sum(1 for k, t in records if k == kind and in_window(t, now, seconds))
        for kind in HEALTH_KINDS
        for suffix, seconds in HEALTH_WINDOWS.items()
    }

    def ratio(numerator: int, denominator: int) -> int:
        return numerator // denominator if denominator else 0

    counts["decline_ratio_bp_1h"] = ratio(counts["declines_1h"] * 10_000, counts["payments_1h"])
    counts["decline_spike_pct"] = ratio(counts["declines_1h"] * 2_400, counts["declines_1d"])
    counts["refund_ratio_bp_30d"] = ratio(counts["refunds_30d"] * 10_000, counts["approved_30d"])
    counts["chargeback_ratio_bp_30d"] = ratio(
        counts["chargebacks_30d"] * 10_000, counts["approved_30d"]
    )
    counts["volume_change_pct"] = ratio(counts["payments_1h"] * 2_400, counts["payments_1d"])
    return counts


health_steps = st.lists(
    st.tuples(
        st.sampled_from([*HEALTH_KINDS, "payments", "approved", "read", "reload"]),
        st.one_of(
            st.integers(-HOUR, 2 * HOUR),
            st.integers(-DAY, 3 * DAY),
            st.sampled_from([0, HOUR, DAY, 43_200_000, -1]),
        ),
    ),
    min_size=10,
    max_size=60,
)


@FAST
@given(health_steps)
def test_health_windows_equal_a_recount(steps):
    health, records, at, clock = HealthWindows.new(), [], T0, 0
    for kind, delta in steps:
        at = min(max(at + delta, T0), T0 + 40 * DAY)
        if kind == "reload":
            health = reloaded(health)
        elif kind in HEALTH_KINDS:
            clock = max(clock, at)
            health.record(kind, at)
            records.append((kind, clock))
        assert health.features(at) == health_recount(records, max(at, clock))
