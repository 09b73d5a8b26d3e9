"""Routing decisions: requested channels, rules, splits, exploration, cost within the success
band, eliminations, quotas, the kill switch, fallbacks and explanations."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter

import pytest

from events.records import PaymentMethod
from streams.routing.bench import bench_decisions, sample_requests, warmed_board
from streams.routing.decision import (
    Elimination,
    RoutingDecision,
    RoutingReason,
    RoutingRequest,
    apply_decision,
    route_payment,
)
from streams.routing.health import HealthBoard
from streams.routing.policy import RoutingPolicy
from streams.routing.policy_file import default_policy, parse_policy
from streams.routing.quotas import QuotaBook
from tests.unit.samples import payment_accepted

T0 = 1_714_560_000_000  # 2024-05-01T10:40:00Z
DAY = "2024-05-01"
POLICY = """\
version = 7
static_priority = ["card", "card_b", "alipay"]

[success_rate]
exploration_bp = 0
band_bp = 200

[health]
half_life_seconds = 600
prior_success_bp = 9000
prior_weight = 10
prior_latency_ms = 1000

[elimination]
failures_in_a_row = 5
probe_interval_seconds = 30
probe_successes = 1

[channels.card]
methods = ["CARD"]
currencies = ["CNY", "USD"]
fees.CARD = { bps = 180, fixed = { CNY = 30, USD = 30 } }

[channels.card_b]
methods = ["CARD"]
currencies = ["CNY", "USD"]
fees.CARD = { bps = 150, fixed = { CNY = 100, USD = 25 } }

[channels.alipay]
methods = ["ALIPAY"]
currencies = ["CNY"]
fees.ALIPAY = { bps = 60, fixed = { CNY = 0 } }
"""
# For 100,000 CNY minor units: card 1,830, card_b 1,600; for 1,000: card 48, card_b 115.
LARGE, SMALL = 100_000, 1_000


def policy_of(extra: str = "", **settings: str) -> RoutingPolicy:
    """The test policy with ``extra`` tables and some settings changed."""
    text = POLICY
    for key, value in settings.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
    return parse_policy(text + extra)


def card(amount: int = LARGE, payment_id: str = "pay-1", **changes: object) -> RoutingRequest:
    request = RoutingRequest(
        payment_id=payment_id,
        merchant_id="shop-1",
        method=PaymentMethod.CARD,
        currency="CNY",
        amount_minor=amount,
        business_date=DAY,
        region="CN",
    )
    return dataclasses.replace(request, **changes)


def board_with(rates: dict[str, tuple[int, int]], policy: RoutingPolicy) -> HealthBoard:
    """A board where each channel had (successes, failures) in the ten seconds before T0, the
    failures spread evenly so that no run of them takes a channel out."""
    board = HealthBoard(policy.health)
    for channel, (successes, failures) in rates.items():
        total = successes + failures
        for index in range(total):
            failed = index * failures // total != (index + 1) * failures // total
            board.observe(channel, not failed, 500, T0 - 10_000 + index)
    return board


def route(
    request: RoutingRequest,
    policy: RoutingPolicy,
    health: HealthBoard | None = None,
    quotas: QuotaBook | None = None,
) -> RoutingDecision:
    health = health or HealthBoard(policy.health)
    return route_payment(request, policy, health, quotas or QuotaBook(), T0)


def take_out(board: HealthBoard, channel: str, at_ms: int = T0 - 1_000) -> None:
    for index in range(5):
        board.observe(channel, False, 900, at_ms + index)


# --- the requested channel -------------------------------------------------------------------


def test_a_requested_channel_wins_outright_even_when_another_is_cheaper():
    policy = policy_of()
    decision = route(card(LARGE, requested_channel="card"), policy)
    assert (decision.channel, decision.reason, decision.fallbacks) == (
        "card",
        RoutingReason.REQUESTED,
        (),
    )
    assert decision.explanation == "requested channel card"


@pytest.mark.parametrize(
    ("requested", "extra", "elimination"),
    [
        ("wechat-h5", "", Elimination.UNKNOWN_CHANNEL),
        ("alipay", "", Elimination.UNSUPPORTED),
        ("card", '\n[merchants.shop-1]\nchannels = ["card_b"]\n', Elimination.MERCHANT_NOT_ENABLED),
    ],
)
def test_a_requested_channel_that_cannot_take_the_payment_is_refused(requested, extra, elimination):
    decision = route(card(requested_channel=requested), policy_of(extra))
    assert decision.channel is None and decision.fallbacks == ()
    assert decision.reason is RoutingReason.REQUESTED_CHANNEL_UNAVAILABLE
    assert [c.eliminated for c in decision.candidates] == [elimination]
    assert decision.explanation.startswith(f"requested channel {requested} unavailable: ")


def test_a_disabled_or_eliminated_requested_channel_is_refused_not_rerouted():
    text = POLICY.replace("[channels.card]\n", "[channels.card]\nenabled = false\n")
    decision = route(card(requested_channel="card"), parse_policy(text))
    assert decision.candidates[0].eliminated is Elimination.DISABLED
    policy = policy_of()
    board = HealthBoard(policy.health)
    take_out(board, "card")
    decision = route(card(requested_channel="card"), policy, board)
    assert decision.reason is RoutingReason.REQUESTED_CHANNEL_UNAVAILABLE
    assert decision.candidates[0].eliminated is Elimination.CIRCUIT_OPEN
    assert "5 failures in a row" in decision.explanation


def test_a_requested_channel_over_quota_is_refused_and_one_due_a_probe_is_its_probe():
    policy = policy_of("\n[channels.card.daily_quota]\ncount = 0\n")
    decision = route(card(requested_channel="card"), policy)
    assert decision.candidates[0].eliminated is Elimination.CHANNEL_COUNT_QUOTA
    board = HealthBoard(policy.health)
    take_out(board, "card_b", T0 - 60_000)
    decision = route(card(requested_channel="card_b"), policy, board)
    assert (decision.channel, decision.reason, decision.probe) == (
        "card_b",
        RoutingReason.REQUESTED,
        True,
    )
    assert decision.explanation == (
        "requested channel card_b, as the probe of a channel out of service"
    )


def test_a_request_is_built_from_an_accepted_payment():
    accepted = payment_accepted(method=PaymentMethod.CARD, channel="card_b", region="HK")
    request = RoutingRequest.from_accepted(accepted, DAY)
    assert request == RoutingRequest(
        payment_id=accepted.payment_id,
        merchant_id="shop-0042",
        method=PaymentMethod.CARD,
        currency="CNY",
        amount_minor=64_800,
        business_date=DAY,
        region="HK",
        requested_channel="card_b",
    )


# --- rules ----------------------------------------------------------------------------------

RULE = """
[[rules]]
name = "only_card_b"
{conditions}
channels = ["card_b"]
"""


@pytest.mark.parametrize(
    ("conditions", "matching", "other"),
    [
        ('method = ["CARD"]', {}, {"method": PaymentMethod.ALIPAY}),
        ('currency = ["USD"]', {"currency": "USD"}, {}),
        (
            'currency = ["CNY"]\namount = { min = 500, max = 2000 }',
            {"amount_minor": 500},
            {"amount_minor": 2000},
        ),
        (
            'currency = ["CNY"]\namount = { min = 500, max = 2000 }',
            {"amount_minor": 1999},
            {"amount_minor": 499},
        ),
        (
            'currency = ["CNY"]\namount = { max = 2000 }',
            {"amount_minor": 1},
            {"amount_minor": 5000},
        ),
        ('merchants = ["shop-1", "shop-9"]', {}, {"merchant_id": "shop-2"}),
        ('regions = ["CN"]', {}, {"region": "HK"}),
        ('regions = ["CN"]', {}, {"region": None}),
    ],
)
def test_a_rule_narrows_the_channels_only_when_every_condition_holds(conditions, matching, other):
    policy = policy_of(RULE.format(conditions=conditions))
    decision = route(card(SMALL, **matching), policy)
    assert decision.rule == "only_card_b"
    assert [c.channel for c in decision.candidates] == ["card_b"]
    decision = route(card(SMALL, **other), policy)
    assert decision.rule is None
    if other.get("method") is not PaymentMethod.ALIPAY:
        assert [c.channel for c in decision.candidates] == ["card", "card_b"]


def test_the_first_matching_rule_applies():
    rules = """
[[rules]]
name = "cny_to_card_b"
currency = ["CNY"]
channels = ["card_b"]

[[rules]]
name = "cards_to_card"
method = ["CARD"]
channels = ["card"]
"""
    policy = policy_of(rules)
    assert route(card(), policy).rule == "cny_to_card_b"
    assert route(card(currency="USD"), policy).rule == "cards_to_card"


def test_a_rule_whose_channels_cannot_serve_the_payment_leaves_no_channel():
    policy = policy_of(RULE.format(conditions='merchants = ["shop-1"]').replace("card_b", "alipay"))
    decision = route(card(), policy)
    assert decision.reason is RoutingReason.NO_CHANNEL and decision.candidates == ()
    assert decision.explanation == "no channel left: none takes CARD in CNY (rule only_alipay)"


SPLIT = """
[[rules]]
name = "ramp_up"
method = ["CARD"]
channels = ["card", "card_b"]
weights = [80, 20]
"""


def test_a_volume_split_follows_its_weights_over_many_payments():
    policy = policy_of(SPLIT)
    winners = Counter(route(card(payment_id=f"pay-{i}"), policy).channel for i in range(5_000))
    assert winners["card_b"] / 5_000 == pytest.approx(0.20, abs=0.02)
    decision = route(card(payment_id="pay-1"), policy)
    assert decision.reason is RoutingReason.VOLUME_SPLIT
    assert decision.fallbacks == tuple({"card", "card_b"} - {decision.channel})
    assert "splits volume card 80 / card_b 20" in decision.explanation


def test_a_volume_split_skips_an_eliminated_channel():
    policy, board = policy_of(SPLIT), HealthBoard(policy_of().health)
    take_out(board, "card")
    winners = {route(card(payment_id=f"pay-{i}"), policy, board).channel for i in range(200)}
    assert winners == {"card_b"}


# --- success rate, band and exploration -----------------------------------------------------


def test_the_cheaper_channel_wins_inside_the_success_band():
    policy = policy_of()
    board = board_with({"card": (970, 30), "card_b": (960, 40)}, policy)
    large, small = route(card(LARGE), policy, board), route(card(SMALL), policy, board)
    assert (large.channel, large.fallbacks) == ("card_b", ("card",))  # 1,600 against 1,830
    assert (small.channel, small.fallbacks) == ("card", ("card_b",))  # 48 against 115
    assert large.reason is RoutingReason.SUCCESS_RATE
    assert large.explanation.startswith("cheapest within 200 bp of best success rate (96.")
    assert "outside" not in large.explanation


def test_the_better_channel_wins_when_the_cheaper_one_is_outside_the_band():
    policy = policy_of()
    board = board_with({"card": (970, 30), "card_b": (930, 70)}, policy)
    decision = route(card(LARGE), policy, board)
    assert (decision.channel, decision.fallbacks) == ("card", ("card_b",))
    assert decision.explanation.endswith("; outside the band: card_b")
    assert [decision.in_band(row) for row in decision.candidates] == [True, False]


def test_a_wider_band_lets_the_cheaper_channel_back_in():
    policy = policy_of(band_bp="500")
    board = board_with({"card": (970, 30), "card_b": (930, 70)}, policy)
    assert route(card(LARGE), policy, board).channel == "card_b"


def test_fallbacks_rank_the_band_by_fee_then_the_rest_by_success():
    extra = """
[channels.card_c]
methods = ["CARD"]
currencies = ["CNY"]
fees.CARD = { bps = 100, fixed = { CNY = 0 } }

[channels.card_d]
methods = ["CARD"]
currencies = ["CNY"]
fees.CARD = { bps = 10, fixed = { CNY = 0 } }
"""
    policy = policy_of(extra)
    rates = {"card": (970, 30), "card_b": (965, 35), "card_c": (800, 200), "card_d": (700, 300)}
    board = board_with(rates, policy)
    take_out(board, "card_d")
    decision = route(card(LARGE), policy, board)
    assert decision.channel == "card_b"
    assert decision.fallbacks == ("card", "card_c")  # the band by fee, then card_c; card_d out
    assert [c.eliminated for c in decision.candidates] == [
        None,
        None,
        None,
        Elimination.CIRCUIT_OPEN,
    ]


def test_exploration_takes_its_share_and_is_the_same_for_the_same_payment():
    policy = policy_of(exploration_bp="500")
    board = board_with({"card": (970, 30), "card_b": (960, 40)}, policy)
    decisions = [route(card(LARGE, payment_id=f"pay-{i}"), policy, board) for i in range(10_000)]
    explored = [d for d in decisions if d.reason is RoutingReason.EXPLORATION]
    assert len(explored) / 10_000 == pytest.approx(0.05, abs=0.008)
    picks = Counter(d.channel for d in explored)
    assert picks["card"] / len(explored) == pytest.approx(0.5, abs=0.1)
    for decision in explored[:50]:
        assert route(decision.request, policy, board) == decision
        assert (
            decision.explanation
            == f"exploration: {decision.channel} picked at random among 2 channels"
        )


def test_no_exploration_with_one_channel_left():
    policy = policy_of(RULE.format(conditions='method = ["CARD"]'), exploration_bp="10000")
    decision = route(card(), policy)
    assert decision.reason is RoutingReason.SUCCESS_RATE
    assert decision.explanation == "card_b is the only channel available (rule only_card_b)"
    decision = route(card(method=PaymentMethod.ALIPAY), policy)
    assert decision.reason is RoutingReason.SUCCESS_RATE
    assert decision.explanation == "alipay is the only channel available"


# --- eliminations and probes ----------------------------------------------------------------


def test_a_channel_out_of_service_is_eliminated_then_probed_then_back():
    policy = policy_of()
    board, quotas = HealthBoard(policy.health), QuotaBook()
    take_out(board, "card_b", T0)
    decision = route_payment(card(LARGE), policy, board, quotas, T0 + 10)
    assert (decision.channel, decision.fallbacks) == ("card", ())
    assert decision.candidates[1].eliminated is Elimination.CIRCUIT_OPEN
    due = T0 + 4 + 30_000
    probe = route_payment(card(SMALL, payment_id="pay-2"), policy, board, quotas, due)
    assert (probe.channel, probe.reason, probe.probe) == ("card_b", RoutingReason.PROBE, True)
    assert probe.fallbacks == ("card",)
    apply_decision(probe, board, quotas, due)
    after = route_payment(card(LARGE, payment_id="pay-3"), policy, board, quotas, due + 1)
    assert after.channel == "card" and after.candidates[1].eliminated is Elimination.PROBE_IN_FLIGHT
    board.observe("card_b", True, 300, due + 400)
    back = route_payment(card(LARGE, payment_id="pay-4"), policy, board, quotas, due + 500)
    assert back.candidates[1].eliminated is None and back.fallbacks == ("card_b",)
    # Back in service, but its estimate still carries its failures: below the band for now.
    assert back.explanation.endswith("outside the band: card_b")


def test_a_failed_probe_keeps_the_channel_out_for_another_interval():
    policy = policy_of()
    board = HealthBoard(policy.health)
    take_out(board, "card_b", T0)
    due = T0 + 4 + 30_000
    board.probe_sent("card_b", due)
    board.observe("card_b", False, 300, due + 100, timed_out=True)
    decision = route_payment(card(LARGE), policy, board, QuotaBook(), due + 29_000)
    assert (
        decision.channel == "card" and decision.candidates[1].eliminated is Elimination.CIRCUIT_OPEN
    )
    decision = route_payment(card(LARGE), policy, board, QuotaBook(), due + 30_100)
    assert decision.reason is RoutingReason.PROBE


def test_merchant_enablement_and_disabled_channels_are_eliminations_with_reasons():
    text = POLICY.replace("[channels.card_b]\n", "[channels.card_b]\nenabled = false\n")
    policy = parse_policy(text + '\n[merchants.shop-1]\nchannels = ["card_b", "alipay"]\n')
    decision = route(card(), policy)
    assert decision.reason is RoutingReason.NO_CHANNEL and decision.channel is None
    assert [(c.channel, c.eliminated) for c in decision.candidates] == [
        ("card", Elimination.MERCHANT_NOT_ENABLED),
        ("card_b", Elimination.DISABLED),
    ]
    assert decision.explanation == (
        "no channel left: card not enabled for merchant shop-1; card_b disabled in the policy"
    )


def test_no_channel_for_a_currency_nobody_takes():
    decision = route(card(currency="JPY"), policy_of())
    assert decision.reason is RoutingReason.NO_CHANNEL
    assert decision.explanation == "no channel left: none takes CARD in JPY"


# --- quotas ---------------------------------------------------------------------------------

QUOTAS = {
    "channel count": (
        "[channels.card_b.daily_quota]\ncount = 2\n",
        Elimination.CHANNEL_COUNT_QUOTA,
    ),
    "channel amount": (
        "[channels.card_b.daily_quota]\namount = { CNY = 250000 }\n",
        Elimination.CHANNEL_AMOUNT_QUOTA,
    ),
    "merchant count": (
        "[channels.card_b.merchant_daily_quota]\ncount = 2\n",
        Elimination.MERCHANT_COUNT_QUOTA,
    ),
    "merchant amount": (
        "[merchants.shop-1.daily_quota]\ncard_b = { amount = { CNY = 250000 } }\n",
        Elimination.MERCHANT_AMOUNT_QUOTA,
    ),
}


@pytest.mark.parametrize("case", list(QUOTAS))
def test_a_quota_stops_a_channel_at_its_cap_until_the_next_business_date(case):
    extra, elimination = QUOTAS[case]
    policy = policy_of("\n" + extra)
    board, quotas = HealthBoard(policy.health), QuotaBook()
    for index in range(2):
        decision = route_payment(card(LARGE, f"pay-{index}"), policy, board, quotas, T0 + index)
        assert decision.channel == "card_b"
        apply_decision(decision, board, quotas, T0 + index)
    stopped = route_payment(card(LARGE, "pay-3"), policy, board, quotas, T0 + 5)
    assert stopped.channel == "card"
    assert stopped.candidates[1].eliminated is elimination
    assert stopped.candidates[1].detail.startswith("over the")
    if "merchant" in case:
        other = route_payment(card(LARGE, "pay-4", merchant_id="shop-2"), policy, board, quotas, T0)
        assert other.channel == "card_b"
    tomorrow = card(LARGE, "pay-5", business_date="2024-05-02")
    assert route_payment(tomorrow, policy, board, quotas, T0 + 86_400_000).channel == "card_b"


# --- the kill switch ------------------------------------------------------------------------


def test_the_kill_switch_returns_to_the_static_order_whatever_the_metrics():
    text = POLICY.replace(
        'static_priority = ["card", "card_b", "alipay"]',
        'kill_switch = true\nstatic_priority = ["card_b", "alipay"]',
    )
    policy = parse_policy(text + SPLIT)
    board = board_with({"card": (990, 10), "card_b": (600, 400)}, policy)
    decision = route(card(SMALL), policy, board)
    assert (decision.channel, decision.reason, decision.fallbacks) == (
        "card_b",
        RoutingReason.KILL_SWITCH,
        (),
    )
    assert decision.candidates[1].eliminated is Elimination.NOT_IN_STATIC_ORDER
    assert decision.explanation.startswith("kill switch on: card_b is the first available channel")
    take_out(board, "card_b")
    assert route(card(SMALL), policy, board).reason is RoutingReason.NO_CHANNEL


def test_the_kill_switch_follows_the_static_list_order():
    text = POLICY.replace("static_priority", "kill_switch = true\nstatic_priority")
    policy = parse_policy(text)
    board = board_with({"card": (500, 500), "card_b": (999, 1)}, policy)
    decision = route(card(LARGE), policy, board)
    assert (decision.channel, decision.fallbacks) == ("card", ("card_b",))


# --- purity, explanation and speed ----------------------------------------------------------


def test_the_same_inputs_give_the_same_decision_and_change_nothing():
    policy = default_policy()
    board, quotas = warmed_board(200), QuotaBook()
    before = (board.to_rows(), quotas.to_rows())
    for request in sample_requests(300):
        first = route_payment(request, policy, board, quotas, T0 + 20_000)
        assert route_payment(request, policy, board, quotas, T0 + 20_000) == first
    assert (board.to_rows(), quotas.to_rows()) == before


def test_to_dict_is_json_and_names_every_candidate_with_its_reason():
    policy = policy_of()
    board = board_with({"card": (970, 30), "card_b": (930, 70)}, policy)
    take_out(board, "alipay")
    decision = route(card(LARGE), policy, board)
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["channel"] == "card" and data["reason"] == "SUCCESS_RATE"
    assert data["fallbacks"] == ["card_b"] and data["policy_version"] == 7
    assert data["explanation"] == decision.explanation
    assert [c["channel"] for c in data["candidates"]] == ["card", "card_b"]
    chosen, other = data["candidates"]
    assert chosen["rank"] == 0 and chosen["reason"] == "chosen: within the 200 bp band, fee 1830"
    assert other["rank"] == 1 and other["reason"] == "fallback 1: outside the 200 bp band, fee 1600"
    assert other["gap_bp"] < -200 and other["in_band"] is False and other["eliminated"] is None
    assert set(chosen) == {
        "channel",
        "fee_minor",
        "success_bp",
        "latency_ms",
        "gap_bp",
        "in_band",
        "rank",
        "eliminated",
        "reason",
    }


def test_to_dict_of_every_kind_of_decision_is_json():
    policy = default_policy()
    board, quotas = warmed_board(200), QuotaBook()
    take_out(board, "wechat", T0)
    reasons = set()
    for request in sample_requests(400):
        decision = route_payment(request, policy, board, quotas, T0 + 60_000)
        data = json.loads(json.dumps(decision.to_dict()))
        assert len(data["candidates"]) == len(decision.candidates)
        assert all(c["reason"] for c in data["candidates"])
        reasons.add(data["reason"])
    assert reasons >= {"SUCCESS_RATE", "VOLUME_SPLIT", "REQUESTED", "EXPLORATION", "PROBE"}


def test_the_bench_reports_a_rate():
    assert bench_decisions(2_000) > 1_000
