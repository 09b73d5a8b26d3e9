"""Routing's live state: channel health (decay, prior, elimination, probes) and daily quotas,
and both as JSON rows."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.routing.health import (
    ChannelHealth,
    ChannelStatus,
    HealthBoard,
    HealthSettings,
    iso_time,
)
from streams.routing.quotas import (
    RETAINED_DATES,
    DailyQuota,
    QuotaBook,
    QuotaBreach,
    QuotaScope,
    Usage,
    usage_key,
)

T0 = 1_714_560_000_000  # 2024-05-01T10:40:00Z
SECOND = 1_000
SETTINGS = HealthSettings(
    half_life_seconds=600,
    prior_success_bp=9_000,
    prior_weight=10,
    prior_latency_ms=1_000,
    failures_in_a_row=5,
    probe_interval_seconds=30,
    probe_successes=1,
)
INTERVAL = SETTINGS.probe_interval_seconds * SECOND


def fail_times(
    board: HealthBoard, channel: str, count: int, at_ms: int = T0, **flags: bool
) -> None:
    for index in range(count):
        board.observe(channel, False, 900, at_ms + index, **flags)


def status(board: HealthBoard, channel: str, at_ms: int) -> ChannelStatus:
    return board.assess(channel, at_ms)[2]


# --- estimates ------------------------------------------------------------------------------


def test_a_channel_without_results_gets_the_prior():
    board = HealthBoard(SETTINGS)
    assert board.assess("card", T0) == (0.9, 1_000.0, ChannelStatus.IN_SERVICE)


def test_results_move_the_estimate_away_from_the_prior_but_never_to_0_or_1():
    board = HealthBoard(SETTINGS)
    for index in range(100):
        board.observe("card", True, 200, T0 + index)
        board.observe("card_b", False, 200, T0 + index)
        board.observe("card_b", True, 200, T0 + index)  # a success ends each run of failures
        board.observe("card_b", False, 200, T0 + index)
    card, card_b = board.assess("card", T0 + 100)[0], board.assess("card_b", T0 + 100)[0]
    assert 0.9 < card < 1.0
    assert card == pytest.approx((100 + 9) / (100 + 10), rel=1e-3)
    assert 0.0 < card_b < 0.5
    latency = board.assess("card", T0 + 100)[1]
    assert latency == pytest.approx((100 * 200 + 10 * 1_000) / 110, rel=1e-3)


def test_an_observation_weighs_half_after_one_half_life():
    board = HealthBoard(SETTINGS)
    board.observe("card", False, 1_000, T0)
    assert board.assess("card", T0)[0] == pytest.approx(9 / 11)
    half_life = SETTINGS.half_life_seconds * SECOND
    assert board.assess("card", T0 + half_life)[0] == pytest.approx(9 / 10.5)
    assert board.assess("card", T0 + 2 * half_life)[0] == pytest.approx(9 / 10.25)


def test_old_failures_matter_less_than_recent_ones():
    board, hour = HealthBoard(SETTINGS), 3_600 * SECOND
    for index in range(4):
        board.observe("recovered", False, 500, T0 + index)
        board.observe("degraded", True, 500, T0 + index)
    for index in range(4):
        board.observe("recovered", True, 500, T0 + hour + index)
        board.observe("degraded", False, 500, T0 + hour + index)
    recovered, degraded = (
        board.assess("recovered", T0 + hour)[0],
        board.assess("degraded", T0 + hour)[0],
    )
    assert recovered > 0.85 > degraded


def test_a_result_from_the_past_does_not_move_the_clock_back():
    board = HealthBoard(SETTINGS)
    board.observe("card", True, 100, T0 + 10 * SECOND)
    health = board.observe("card", False, 100, T0)
    assert health.updated_ms == T0 + 10 * SECOND
    assert (health.successes, health.failures) == (1.0, 1.0)


def test_reading_does_not_change_the_state():
    board = HealthBoard(SETTINGS)
    board.observe("card", True, 100, T0)
    before = board.to_rows()
    board.assess("card", T0 + 3_600 * SECOND)
    assert board.to_rows() == before


# --- elimination and probes -----------------------------------------------------------------


def test_a_run_of_failures_takes_a_channel_out():
    board = HealthBoard(SETTINGS)
    fail_times(board, "card", 4)
    assert status(board, "card", T0 + 10) is ChannelStatus.IN_SERVICE
    fail_times(board, "card", 1, T0 + 4)
    assert status(board, "card", T0 + 10) is ChannelStatus.OUT
    outage = board.channels["card"].outage()
    assert outage.startswith(f"eliminated: 5 failures in a row since {iso_time(T0)}")
    assert "next probe at 2024-05-01T10:40:30.004Z" in outage


def test_a_success_ends_the_run():
    board = HealthBoard(SETTINGS)
    fail_times(board, "card", 4)
    board.observe("card", True, 100, T0 + 10)
    fail_times(board, "card", 4, T0 + 20)
    assert status(board, "card", T0 + 30) is ChannelStatus.IN_SERVICE
    assert board.channels["card"].run == 4


def test_timeouts_count_as_failures_even_when_reported_as_succeeded():
    board = HealthBoard(SETTINGS)
    for index in range(5):
        board.observe("card", True, 30_000, T0 + index, timed_out=True)
    assert status(board, "card", T0 + 10) is ChannelStatus.OUT
    assert board.channels["card"].failures > 4.9
    assert "5 failures in a row (5 timeouts)" in board.channels["card"].outage()


def test_a_decline_lowers_the_success_rate_but_ends_the_run():
    board = HealthBoard(SETTINGS)
    fail_times(board, "card", 4)
    board.observe("card", False, 300, T0 + 10, declined=True)
    fail_times(board, "card", 4, T0 + 20)
    assert status(board, "card", T0 + 30) is ChannelStatus.IN_SERVICE
    assert board.channels["card"].failures > 8.9


def test_a_probe_is_due_after_the_interval_and_one_at_a_time():
    board = HealthBoard(SETTINGS)
    fail_times(board, "card", 5)
    out_at = T0 + 4
    assert status(board, "card", out_at + INTERVAL - 1) is ChannelStatus.OUT
    assert status(board, "card", out_at + INTERVAL) is ChannelStatus.PROBE_DUE
    board.probe_sent("card", out_at + INTERVAL)
    assert status(board, "card", out_at + INTERVAL + 1) is ChannelStatus.PROBE_IN_FLIGHT
    assert "awaits its result" in board.channels["card"].outage()
    # A probe never answered is taken as lost after another interval.
    assert status(board, "card", out_at + 2 * INTERVAL) is ChannelStatus.PROBE_DUE


def test_a_probe_success_brings_the_channel_back():
    board = HealthBoard(SETTINGS)
    fail_times(board, "card", 5)
    probe_at = T0 + 4 + INTERVAL
    board.probe_sent("card", probe_at)
    board.observe("card", True, 400, probe_at + 500)
    assert status(board, "card", probe_at + 501) is ChannelStatus.IN_SERVICE
    health = board.channels["card"]
    assert (health.run, health.out_since_ms, health.probe_sent_ms) == (0, None, None)


def test_a_probe_failure_restarts_the_interval():
    board = HealthBoard(SETTINGS)
    fail_times(board, "card", 5)
    probe_at = T0 + 4 + INTERVAL
    board.probe_sent("card", probe_at)
    board.observe("card", False, 400, probe_at + 500)
    assert status(board, "card", probe_at + 501) is ChannelStatus.OUT
    assert status(board, "card", probe_at + 500 + INTERVAL - 1) is ChannelStatus.OUT
    assert status(board, "card", probe_at + 500 + INTERVAL) is ChannelStatus.PROBE_DUE
    assert board.channels["card"].run == 6


def test_the_configured_number_of_probe_successes_is_needed():
    board = HealthBoard(HealthSettings(probe_successes=2, failures_in_a_row=5))
    fail_times(board, "card", 5)
    probe_at = T0 + 4 + INTERVAL
    board.observe("card", True, 400, probe_at)
    assert status(board, "card", probe_at + 1) is ChannelStatus.PROBE_DUE  # the next may go now
    assert "5 failures in a row" in board.channels["card"].outage()
    board.observe("card", True, 400, probe_at + 2)
    assert status(board, "card", probe_at + 3) is ChannelStatus.IN_SERVICE


# --- rows -----------------------------------------------------------------------------------

observations = st.lists(
    st.tuples(
        st.sampled_from(["alipay", "card", "card_b"]),
        st.booleans(),
        st.integers(min_value=0, max_value=60_000),
        st.integers(min_value=0, max_value=7_200_000),
        st.booleans(),
        st.booleans(),
    ),
    max_size=60,
)


def replayed(results: list[tuple[str, bool, int, int, bool, bool]]) -> HealthBoard:
    board = HealthBoard(SETTINGS)
    for channel, succeeded, latency, offset, timed_out, probe in results:
        if probe:
            board.probe_sent(channel, T0 + offset)
        board.observe(channel, succeeded, latency, T0 + offset, timed_out)
    return board


@given(observations)
def test_health_rows_round_trip_through_json_exactly(results):
    board = replayed(results)
    rows = json.loads(json.dumps(board.to_rows()))
    restored = HealthBoard.from_rows(SETTINGS, rows)
    assert restored.channels == board.channels
    for channel in board.channels:
        at_ms = T0 + 8_000_000
        assert restored.assess(channel, at_ms) == board.assess(channel, at_ms)


@given(observations)
def test_replaying_the_same_results_gives_the_same_state(results):
    assert replayed(results).to_rows() == replayed(results).to_rows()


def test_a_whole_number_written_without_its_fraction_reads_back_as_a_float():
    row = ChannelHealth("card", T0, 3.0, 1.0, 900.0).to_row()
    row[2:5] = [3, 1, 900]
    health = ChannelHealth.from_row(row)
    assert isinstance(health.successes, float) and health == ChannelHealth(
        "card", T0, 3.0, 1.0, 900.0
    )


def test_take_changes_gives_each_changed_channel_once():
    board = HealthBoard(SETTINGS)
    board.observe("card", True, 100, T0)
    board.observe("card", True, 100, T0 + 1)
    board.probe_sent("alipay", T0)
    changes = board.take_changes()
    assert changes == {
        "alipay": board.channels["alipay"].to_row(),
        "card": board.channels["card"].to_row(),
    }
    assert board.take_changes() == {}


# --- quotas ---------------------------------------------------------------------------------

DAY = "2024-05-01"
CAPS = DailyQuota(count=2, amounts={"CNY": 10_000})


def test_usage_is_counted_per_channel_and_per_merchant_on_it():
    book = QuotaBook()
    book.record(DAY, "card", "shop-1", "CNY", 4_000)
    book.record(DAY, "card", "shop-2", "USD", 500)
    assert book.usage(DAY, "card") == Usage(2, {"CNY": 4_000, "USD": 500})
    assert book.usage(DAY, "card", "shop-1") == Usage(1, {"CNY": 4_000})
    assert book.usage(DAY, "alipay") == Usage()


@pytest.mark.parametrize(
    ("channel_cap", "merchant_cap", "fits", "scope"),
    [
        (DailyQuota(count=3), DailyQuota(), 10**9, QuotaScope.CHANNEL_COUNT),
        (DailyQuota(amounts={"CNY": 9_000}), DailyQuota(), 1_000, QuotaScope.CHANNEL_AMOUNT),
        (DailyQuota(), DailyQuota(count=2), 10**9, QuotaScope.MERCHANT_COUNT),
        (DailyQuota(), DailyQuota(amounts={"CNY": 5_000}), 1_000, QuotaScope.MERCHANT_AMOUNT),
    ],
)
def test_a_cap_stops_the_payment_that_would_break_it(channel_cap, merchant_cap, fits, scope):
    book = QuotaBook()
    book.record(DAY, "card", "shop-1", "CNY", 4_000)
    book.record(DAY, "card", "shop-2", "CNY", 4_000)
    assert book.would_exceed(DAY, "card", "shop-1", "CNY", fits, channel_cap, merchant_cap) is None
    book.record(DAY, "card", "shop-1", "USD", 1)  # counts, in another currency
    breach = book.would_exceed(DAY, "card", "shop-1", "CNY", fits + 1, channel_cap, merchant_cap)
    assert breach is not None and breach.scope is scope


def test_an_amount_cap_binds_only_its_currency_and_the_count_counts_every_payment():
    book = QuotaBook()
    book.record(DAY, "card", "shop-1", "CNY", 10_000)
    assert book.would_exceed(DAY, "card", "shop-1", "USD", 99_999, CAPS, DailyQuota()) is None
    assert book.would_exceed(DAY, "card", "shop-1", "CNY", 1, CAPS, DailyQuota()) == QuotaBreach(
        QuotaScope.CHANNEL_AMOUNT, 10_000, 10_000, "CNY"
    )
    book.record(DAY, "card", "shop-1", "USD", 1)
    breach = book.would_exceed(DAY, "card", "shop-1", "USD", 1, CAPS, DailyQuota())
    assert breach == QuotaBreach(QuotaScope.CHANNEL_COUNT, 2, 2)
    assert breach.describe() == "over the channel's daily count quota: 2 of 2 used"


def test_a_new_business_date_starts_from_nothing_and_drops_the_oldest():
    book = QuotaBook()
    for _ in range(2):
        book.record(DAY, "card", "shop-1", "CNY", 5_000)
    book.take_changes()
    assert book.would_exceed(DAY, "card", "shop-1", "CNY", 1, CAPS, DailyQuota()) is not None
    assert book.would_exceed("2024-05-02", "card", "shop-1", "CNY", 1, CAPS, DailyQuota()) is None
    book.record("2024-05-02", "card", "shop-1", "CNY", 1)
    book.record("2024-05-03", "card", "shop-1", "CNY", 1)
    assert RETAINED_DATES == 2 and book.usage(DAY, "card") == Usage()
    changes = book.take_changes()
    assert changes[usage_key(DAY, "card")] is None
    assert changes[usage_key(DAY, "card", "shop-1")] is None
    assert changes[usage_key("2024-05-03", "card", "shop-1")] == [
        "2024-05-03",
        "card",
        "shop-1",
        1,
        {"CNY": 1},
    ]


def test_a_payment_of_a_date_already_dropped_is_not_counted():
    book = QuotaBook()
    book.record("2024-05-02", "card", "shop-1", "CNY", 1)
    book.record("2024-05-03", "card", "shop-1", "CNY", 1)
    book.take_changes()
    book.record(DAY, "card", "shop-1", "CNY", 1)
    assert book.usage(DAY, "card") == Usage() and book.take_changes() == {}
    assert sorted({row[0] for row in book.to_rows()}) == ["2024-05-02", "2024-05-03"]


usages = st.lists(
    st.tuples(
        st.sampled_from(["2024-05-01", "2024-05-02", "2024-05-03"]),
        st.sampled_from(["card", "card_b"]),
        st.sampled_from(["shop-1", "shop-2"]),
        st.sampled_from(["CNY", "USD", "JPY"]),
        st.integers(min_value=1, max_value=10**12),
    ),
    max_size=40,
)


@given(usages)
def test_quota_rows_round_trip_through_json_exactly(payments):
    book = QuotaBook()
    for payment in payments:
        book.record(*payment)
    restored = QuotaBook.from_rows(json.loads(json.dumps(book.to_rows())))
    assert restored.to_rows() == book.to_rows()
    for date, channel, merchant, _, _ in payments:
        assert restored.usage(date, channel, merchant) == book.usage(date, channel, merchant)


@given(usages)
def test_the_changes_taken_rebuild_the_book(payments):
    book, store = QuotaBook(), {}
    for payment in payments:
        book.record(*payment)
        store.update(book.take_changes())
    rows = [row for row in store.values() if row is not None]
    assert sorted(QuotaBook.from_rows(rows).to_rows(), key=repr) == sorted(book.to_rows(), key=repr)
