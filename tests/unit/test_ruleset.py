"""Rule files, limits and the engine: loading, every problem reported, verdicts and explanations."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import streams.risk.ruleset as ruleset_module
from streams.risk.features import HEALTH_FEATURES, PAYMENT_FEATURES, FeatureType
from streams.risk.rule_file import (
    RuleProblem,
    RuleSetError,
    load_ruleset,
    parse_amount,
    parse_duration,
    parse_ruleset,
)
from streams.risk.ruleset import (
    COUNT_LIMITS,
    FiredAlert,
    FiredRule,
    Outcome,
    check_limits,
    evaluate,
    evaluate_alerts,
    is_limit_key,
)

DEFAULT_RULES = Path(ruleset_module.__file__).with_name("default.rules")
# An everyday purchase in each currency the app takes, in minor units.
TYPICAL = {
    "CNY": 6_800,
    "USD": 999,
    "EUR": 899,
    "JPY": 1_200,
    "HKD": 7_800,
    "SGD": 1_290,
    "GBP": 799,
}
CURRENCIES = tuple(TYPICAL)


def problems_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(RuleSetError) as caught:
        parse_ruleset(text)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def only_problem(text: str) -> tuple[int, int, str]:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def quiet_payment(
    amount: int = 6_800, currency: str = "CNY", **overrides: int | bool | str
) -> dict[str, int | bool | str]:
    """An ordinary payment: an established user paying about their usual amount with their own
    phone and card, for the third time today, at a merchant with a steady trickle of sales."""
    features: dict[str, int | bool | str] = {}
    for name, kind in PAYMENT_FEATURES.items():
        features[name] = {FeatureType.INT: 0, FeatureType.BOOL: False, FeatureType.STR: ""}[kind]
        if ".distinct_" in name:
            features[name] = 1
    features.update(amount=amount, currency=currency, method="ALIPAY", region="CN")
    features.update({"merchant_id": "shop-1", "merchant.rating": "B"})
    usual = amount * 9 // 10
    for dimension in ("user", "device", "ip", "account", "merchant"):
        features.update(
            {
                f"{dimension}.present": True,
                f"{dimension}.history_payments": 40,
                f"{dimension}.usual_amount": usual,
                f"{dimension}.amount_vs_usual_pct": amount * 100 // usual,
                f"{dimension}.daily_amount": 2 * usual,
                f"{dimension}.payments_1m": 1,
                f"{dimension}.payments_1h": 1,
                f"{dimension}.payments_1d": 3,
                f"{dimension}.amount_1m": amount,
                f"{dimension}.amount_1h": amount,
                f"{dimension}.amount_1d": amount + 2 * usual,
            }
        )
    features.update({"merchant.payments_1m": 2, "merchant.payments_1h": 12})
    features.update({"merchant.payments_1d": 90, "merchant.daily_amount": 80 * usual})
    features.update(overrides)
    return features


MINIMAL = """\
version 3
limit A single_payment CNY 100.00
rule small_review review when amount > 50
"""


# --- loading --------------------------------------------------------------------------------


def test_a_minimal_file_loads_with_its_version_digest_and_text():
    ruleset = parse_ruleset(MINIMAL)
    assert ruleset.version == 3
    assert ruleset.text == MINIMAL
    assert ruleset.digest == hashlib.sha256(MINIMAL.encode()).hexdigest()
    assert [rule.name for rule in ruleset.rules] == ["small_review"]
    assert ruleset.rules[0].line == 3
    assert ruleset.limits_by_rating == {"A": {"single_payment.CNY": 10_000}}


def test_comments_and_blank_lines_are_ignored_but_a_hash_in_a_string_is_kept():
    text = """
# whole-line comment
version 1   # trailing comment

rule odd_region review when region == "#1"  # not "#1" here
"""
    ruleset = parse_ruleset(text)
    (rule,) = ruleset.rules
    assert rule.condition.source == 'region == "#1"'
    assert rule.condition.evaluate({"region": "#1"})
    assert not rule.condition.evaluate({"region": ""})


@pytest.mark.parametrize(
    ("line", "outcome", "delay"),
    [
        ("rule r approve when amount > 1", Outcome.APPROVE, 0),
        ("rule r review when amount > 1", Outcome.REVIEW, 0),
        ("rule r reject when amount > 1", Outcome.REJECT, 0),
        ("rule r delay 30s when amount > 1", Outcome.DELAY, 30),
        ("rule r delay 5m when amount > 1", Outcome.DELAY, 300),
        ("rule r delay 2h when amount > 1", Outcome.DELAY, 7_200),
        ("rule r delay 24h when amount > 1", Outcome.DELAY, 86_400),
    ],
)
def test_rule_outcomes_and_delays(line, outcome, delay):
    (rule,) = parse_ruleset(f"version 1\n{line}\n").rules
    assert (rule.outcome, rule.delay_seconds) == (outcome, delay)


def test_alerts_load_with_their_downgrade_flag_against_health_features():
    text = """version 1
alert spike when decline_spike_pct >= 300
alert chargebacks downgrade when chargeback_ratio_bp_30d >= 100
"""
    alerts = parse_ruleset(text).alerts
    assert [(a.name, a.downgrade, a.line) for a in alerts] == [
        ("spike", False, 2),
        ("chargebacks", True, 3),
    ]


def test_a_rule_and_an_alert_may_share_a_name():
    text = "version 1\nrule spike review when amount > 1\nalert spike when payments_1h > 1\n"
    ruleset = parse_ruleset(text)
    assert (ruleset.rules[0].name, ruleset.alerts[0].name) == ("spike", "spike")


def test_load_ruleset_reports_problems_against_the_path(tmp_path):
    path = tmp_path / "broken.rules"
    path.write_text("version 1\nrule x reject when amount >\n")
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(path)
    assert str(caught.value) == f"{path}:2:28: expected a value, got the end of the expression"


# --- amounts and durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "text", "minor"),
    [
        ("CNY", "50000.00", 5_000_000),
        ("CNY", "5.5", 550),
        ("CNY", "0.01", 1),
        ("CNY", "7", 700),
        ("CNY", "0", 0),
        ("JPY", "10000", 10_000),
        ("KWD", "1.234", 1_234),
        ("USD", "0.1", 10),
    ],
)
def test_amounts_convert_exactly_to_minor_units(currency, text, minor):
    assert parse_amount(currency, text) == minor


@pytest.mark.parametrize(
    ("currency", "text", "message"),
    [
        ("JPY", "10.5", "JPY has no decimals, '10.5' has 1"),
        ("CNY", "1.234", "CNY has 2 decimals, '1.234' has 3"),
        ("CNY", "-5.00", "a limit cannot be negative, got '-5.00'"),
        ("CNY", "1e3", "expected an amount like 50000.00, got '1e3'"),
        ("CNY", "1,000", "expected an amount like 50000.00, got '1,000'"),
        ("CNY", ".5", "expected an amount like 50000.00, got '.5'"),
        ("cny", "5", "expected a currency code like CNY, got 'cny'"),
        ("XYZ", "5", "'XYZ' is not an ISO 4217 currency code"),
    ],
)
def test_bad_amounts_are_refused(currency, text, message):
    with pytest.raises(ValueError) as caught:
        parse_amount(currency, text)
    assert str(caught.value) == message


def test_an_amount_limit_with_too_many_decimals_points_at_the_amount():
    assert only_problem("version 1\nlimit D single_payment JPY 10.5\n") == (
        2,
        28,
        "JPY has no decimals, '10.5' has 1",
    )


def test_an_unknown_currency_points_at_the_currency():
    assert only_problem("version 1\nlimit D single_payment XYZ 10\n") == (
        2,
        24,
        "'XYZ' is not an ISO 4217 currency code",
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1), ("30s", 30), ("5m", 300), ("2h", 7_200), ("24h", 86_400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0s", "0m", "25h", "1441m", "86401s", "5", "5d", "1.5h", "-1s"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# --- problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "column", "message"),
    [
        (
            "frobnicate x",
            1,
            "unknown line 'frobnicate': expected 'version', 'limit', 'rule' or 'alert'",
        ),
        ("limit E single_payment CNY 1", 7, "unknown rating 'E': expected one of A, B, C, D"),
        (
            "limit A single_paymnt CNY 1",
            9,
            "unknown limit 'single_paymnt': expected single_payment, user_daily_amount, "
            "merchant_daily_amount, single_payout, daily_payout or "
            "<user|device|ip|account>_payments_<1m|1h|1d>",
        ),
        (
            "limit A single_payment CNY",
            28,
            "missing words: expected 'limit RATING NAME CURRENCY AMOUNT'",
        ),
        (
            "limit A single_payment CNY 1 2",
            30,
            "unexpected '2': expected 'limit RATING NAME CURRENCY AMOUNT'",
        ),
        ("limit A ip_payments_1h many", 24, "expected a count of payments (0 or more), got 'many'"),
        ("limit A ip_payments_1h -1", 24, "expected a count of payments (0 or more), got '-1'"),
        ("limit A ip_payments_1h 5 6", 26, "unexpected '6': expected 'limit RATING NAME COUNT'"),
        (
            "limit A merchant_payments_1h 5",
            9,
            "unknown limit 'merchant_payments_1h': expected single_payment, user_daily_amount, "
            "merchant_daily_amount, single_payout, daily_payout or "
            "<user|device|ip|account>_payments_<1m|1h|1d>",
        ),
        (
            "rule Card reject when amount > 1",
            6,
            "a name is 1-64 characters of a-z, 0-9 and _, starting with a letter, got 'Card'",
        ),
        (
            "rule " + "a" * 65 + " reject when amount > 1",
            6,
            "a name is 1-64 characters of a-z, 0-9 and _, starting with a letter, "
            f"got '{'a' * 65}'",
        ),
        (
            "rule limit_amount reject when amount > 1",
            6,
            "names starting with 'limit' and 'merchant' are kept for built-in checks",
        ),
        (
            "rule merchant_x reject when amount > 1",
            6,
            "names starting with 'limit' and 'merchant' are kept for built-in checks",
        ),
        (
            "rule r block when amount > 1",
            8,
            "unknown outcome 'block': expected approve, review, reject or delay DURATION",
        ),
        (
            "rule r when amount > 1",
            8,
            "missing outcome: expected approve, review, reject or delay DURATION",
        ),
        ("rule r delay when amount > 1", 8, "'delay' takes one duration, like 'delay 30s'"),
        (
            "rule r delay 0s when amount > 1",
            14,
            "a delay must be longer than 0 and at most 24h, got '0s'",
        ),
        (
            "rule r delay 25h when amount > 1",
            14,
            "a delay must be longer than 0 and at most 24h, got '25h'",
        ),
        (
            "rule r delay soon when amount > 1",
            14,
            "expected a duration like 30s, 5m or 2h, got 'soon'",
        ),
        ("rule r reject now when amount > 1", 15, "unexpected 'now': expected 'when'"),
        (
            "rule r reject amount > 1",
            26,
            "missing 'when': expected 'rule NAME OUTCOME when EXPRESSION'",
        ),
        ("rule r reject when", 19, "empty expression"),
        (
            "rule r reject when devce.payments_1m > 1",
            20,
            "unknown feature 'devce.payments_1m' (did you mean 'device.payments_1m'?)",
        ),
        ("rule r reject when decline_spike_pct > 1", 20, "unknown feature 'decline_spike_pct'"),
        ("rule r reject when amount", 20, "the expression must be a bool, not int"),
        (
            "alert a sometimes when payments_1h > 1",
            9,
            "unexpected 'sometimes': expected 'downgrade' or 'when'",
        ),
        (
            "alert a downgrade now when payments_1h > 1",
            19,
            "unexpected 'now': expected 'downgrade' or 'when'",
        ),
        ("alert a when amount > 1", 14, "unknown feature 'amount'"),
        ("alert a when payments_1h", 14, "the expression must be a bool, not int"),
        ("version 2", 1, "version already defined on line 1"),
    ],
)
def test_each_problem_points_at_its_line_and_column(body, column, message):
    assert only_problem(f"version 1\n{body}\n") == (2, column, message)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("version 0\n", 9, "version must be a positive integer, got '0'"),
        ("version one\n", 9, "version must be a positive integer, got 'one'"),
        ("version\n", 9, "missing words: expected 'version N'"),
        ("version 1 2\n", 11, "unexpected '2': expected 'version N'"),
    ],
)
def test_bad_version_lines(text, column, message):
    assert only_problem(text) == (1, column, message)


def test_a_file_without_a_version_is_refused():
    assert only_problem("# nothing here\nrule r review when amount > 1\n") == (
        1,
        1,
        "missing 'version N' line",
    )
    assert only_problem("") == (1, 1, "missing 'version N' line")


def test_duplicates_point_back_at_the_first_definition():
    text = """version 1
limit A single_payment CNY 100.00
limit B single_payment CNY 100.00
limit A single_payment CNY 200.00
limit A single_payment USD 200.00
rule r review when amount > 1
rule r reject when amount > 2
alert r when payments_1h > 1
alert r when payments_1h > 2
"""
    assert problems_of(text) == [
        (4, 9, "limit A single_payment.CNY already defined on line 2"),
        (7, 6, "rule 'r' already defined on line 6"),
        (9, 7, "alert 'r' already defined on line 8"),
    ]


def test_every_problem_of_a_file_is_reported_in_line_order():
    text = """version 1
limit A single_payment JPY 10.5
rule ok review when amount > 1
rule bad_type reject when currency > 5
rule bad_outcome maybe when amount > 1
alert bad_feature when refund_ratio > 1
frobnicate
"""
    with pytest.raises(RuleSetError) as caught:
        parse_ruleset(text, source="team.rules")
    assert caught.value.problems == [
        RuleProblem(2, 28, "JPY has no decimals, '10.5' has 1"),
        RuleProblem(4, 36, "'>' needs int operands, got str"),
        RuleProblem(
            5, 18, "unknown outcome 'maybe': expected approve, review, reject or delay DURATION"
        ),
        RuleProblem(
            6,
            24,
            "unknown feature 'refund_ratio' (did you mean 'refund_ratio_bp_30d'?)",
        ),
        RuleProblem(
            7, 1, "unknown line 'frobnicate': expected 'version', 'limit', 'rule' or 'alert'"
        ),
    ]
    assert str(caught.value).splitlines() == [
        "team.rules:2:28: JPY has no decimals, '10.5' has 1",
        "team.rules:4:36: '>' needs int operands, got str",
        "team.rules:5:18: unknown outcome 'maybe': expected approve, review, reject or delay "
        "DURATION",
        "team.rules:6:24: unknown feature 'refund_ratio' (did you mean 'refund_ratio_bp_30d'?)",
        "team.rules:7:1: unknown line 'frobnicate': expected 'version', 'limit', 'rule' or 'alert'",
    ]
    assert isinstance(caught.value, ValueError)


def test_windows_line_endings_keep_line_numbers_and_columns():
    assert only_problem("version 1\r\n\r\nrule r review when amount >\r\n") == (
        3,
        28,
        "expected a value, got the end of the expression",
    )


def test_a_rule_with_several_problems_reports_each():
    problems = problems_of("version 1\nrule limit_x block when amount >\n")
    assert [(line, column) for line, column, _ in problems] == [(2, 6), (2, 14), (2, 33)]


# --- limits -----------------------------------------------------------------------------------

LIMITS_FILE = """version 1
limit A single_payment CNY 50000.00
limit A user_daily_amount CNY 100000.00
limit A device_payments_1m 10
limit D single_payment CNY 500.00
limit D single_payment JPY 10000
limit D device_payments_1m 3
"""


def test_limits_are_stored_in_minor_units_under_flat_keys_per_rating():
    ruleset = parse_ruleset(LIMITS_FILE)
    assert ruleset.limits_by_rating == {
        "A": {
            "single_payment.CNY": 5_000_000,
            "user_daily_amount.CNY": 10_000_000,
            "device_payments_1m": 10,
        },
        "D": {"single_payment.CNY": 50_000, "single_payment.JPY": 10_000, "device_payments_1m": 3},
    }


def test_limits_for_puts_a_merchants_overrides_on_top_of_its_ratings_defaults():
    ruleset = parse_ruleset(LIMITS_FILE)
    overrides = {"single_payment.CNY": 80_000, "device_payments_1m": 1, "user_payments_1h": 9}
    assert ruleset.limits_for("D", overrides) == {
        "single_payment.CNY": 80_000,  # loosened
        "single_payment.JPY": 10_000,
        "device_payments_1m": 1,  # tightened
        "user_payments_1h": 9,  # added
    }
    # The defaults themselves are untouched by a merchant's overrides.
    assert ruleset.limits_by_rating["D"]["single_payment.CNY"] == 50_000


def test_limits_for_an_unknown_rating_are_only_the_overrides():
    ruleset = parse_ruleset(LIMITS_FILE)
    assert ruleset.limits_for("", {}) == {}
    assert ruleset.limits_for("Z", {"ip_payments_1d": 5}) == {"ip_payments_1d": 5}


@pytest.mark.parametrize(
    "key",
    ["single_payment.CNY", "user_daily_amount.JPY", "merchant_daily_amount.USD", *COUNT_LIMITS],
)
def test_valid_limit_keys(key):
    assert is_limit_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "single_payment",
        "single_payment.cny",
        "single_payment.XYZ",
        "single_payment.CNY.x",
        "daily_amount.CNY",
        "merchant_payments_1m",
        "device_payments_1w",
        "device_payments_1m.CNY",
        "",
    ],
)
def test_invalid_limit_keys(key):
    assert not is_limit_key(key)


def test_count_limits_cover_four_dimensions_and_three_windows():
    assert len(COUNT_LIMITS) == 12
    assert "account_payments_1d" in COUNT_LIMITS


@pytest.mark.parametrize(("amount", "fires"), [(49_999, False), (50_000, False), (50_001, True)])
def test_single_payment_limit_boundary(amount, fires):
    fired = check_limits({"single_payment.CNY": 50_000}, quiet_payment(amount=amount))
    expected = FiredRule(
        "limit.single_payment",
        Outcome.REJECT,
        0,
        {"amount": amount, "currency": "CNY", "limit": 50_000},
    )
    assert fired == ([expected] if fires else [])


def test_an_amount_limit_of_another_currency_does_not_apply():
    limits = {"single_payment.USD": 100, "user_daily_amount.USD": 100}
    assert check_limits(limits, quiet_payment(amount=1_000_000, currency="CNY")) == []


@pytest.mark.parametrize("dimension", ["user", "merchant"])
@pytest.mark.parametrize(("daily", "fires"), [(93_200, False), (93_201, True)])
def test_daily_amount_limits_count_this_payment_on_top_of_the_days_total(dimension, daily, fires):
    features = quiet_payment(amount=6_800, **{f"{dimension}.daily_amount": daily})
    fired = check_limits({f"{dimension}_daily_amount.CNY": 100_000}, features)
    expected = FiredRule(
        f"limit.{dimension}_daily_amount",
        Outcome.REJECT,
        0,
        {f"{dimension}.daily_amount": daily, "amount": 6_800, "currency": "CNY", "limit": 100_000},
    )
    assert fired == ([expected] if fires else [])


@pytest.mark.parametrize("key", COUNT_LIMITS)
def test_count_limits_let_the_limit_th_payment_through_and_reject_the_next(key):
    dimension, window = key.split("_payments_")
    feature = f"{dimension}.payments_{window}"
    assert check_limits({key: 5}, quiet_payment(**{feature: 5})) == []
    assert check_limits({key: 5}, quiet_payment(**{feature: 6})) == [
        FiredRule(f"limit.{key}", Outcome.REJECT, 0, {feature: 6, "limit": 5})
    ]


def test_a_count_limit_does_not_apply_to_a_payment_without_that_dimension():
    features = quiet_payment(**{"device.present": False, "device.payments_1m": 99})
    assert check_limits({"device_payments_1m": 3}, features) == []


def test_limits_that_are_not_set_do_not_apply():
    features = quiet_payment(amount=10**12, **{"ip.payments_1m": 10**6})
    assert check_limits({}, features) == []
    assert check_limits({"user_payments_1d": 100}, features) == []


def test_all_limit_checks_fire_together_in_a_fixed_order():
    limits = {
        "device_payments_1m": 1,
        "merchant_daily_amount.CNY": 1,
        "single_payment.CNY": 1,
        "user_daily_amount.CNY": 1,
    }
    names = [hit.rule for hit in check_limits(limits, quiet_payment(**{"device.payments_1m": 2}))]
    assert names == [
        "limit.single_payment",
        "limit.user_daily_amount",
        "limit.merchant_daily_amount",
        "limit.device_payments_1m",
    ]


# --- verdicts ---------------------------------------------------------------------------------

ENGINE = """version 1
rule probe delay 30s when amount >= 100
rule hold delay 2m when amount >= 200
rule look review when amount >= 300
rule stop reject when amount >= 400
rule never approve when amount < 0
"""


def test_outcomes_order_reject_review_delay_approve():
    order = sorted(Outcome, key=lambda outcome: outcome.severity)
    assert order == [Outcome.APPROVE, Outcome.DELAY, Outcome.REVIEW, Outcome.REJECT]
    assert [outcome.value for outcome in order] == ["approve", "delay", "review", "reject"]


@pytest.mark.parametrize(
    ("amount", "outcome", "delay", "fired"),
    [
        (50, Outcome.APPROVE, 0, []),
        (100, Outcome.DELAY, 30, ["probe"]),
        (250, Outcome.DELAY, 120, ["probe", "hold"]),  # the longest delay
        (300, Outcome.REVIEW, 0, ["probe", "hold", "look"]),  # no delay once reviewed
        (400, Outcome.REJECT, 0, ["probe", "hold", "look", "stop"]),
    ],
)
def test_the_most_severe_fired_outcome_wins(amount, outcome, delay, fired):
    verdict = evaluate(parse_ruleset(ENGINE), {"amount": amount}, {})
    assert (verdict.outcome, verdict.delay_seconds) == (outcome, delay)
    assert [hit.rule for hit in verdict.fired] == fired


def test_an_approve_rule_that_fires_is_listed_and_the_verdict_is_approve():
    ruleset = parse_ruleset("version 1\nrule trusted approve when amount < 10\n")
    verdict = evaluate(ruleset, {"amount": 5}, {})
    assert verdict.outcome is Outcome.APPROVE
    assert [hit.rule for hit in verdict.fired] == ["trusted"]


def test_limits_fire_before_rules_and_a_limit_rejection_outranks_a_delay():
    ruleset = parse_ruleset("version 1\nrule slow delay 5m when amount > 1\n")
    verdict = evaluate(ruleset, quiet_payment(amount=9_000), {"single_payment.CNY": 8_000})
    assert verdict.outcome is Outcome.REJECT
    assert verdict.delay_seconds == 0
    assert [hit.rule for hit in verdict.fired] == ["limit.single_payment", "slow"]


def test_fired_rules_carry_exactly_the_features_they_read():
    condition = "amount > 1 and (user.present or amount > device.payments_1m)"
    ruleset = parse_ruleset(f"version 1\nrule r review when {condition}\n")
    verdict = evaluate(ruleset, quiet_payment(amount=70), {})
    assert verdict.fired[0].inputs == {
        "amount": 70,
        "user.present": True,
        "device.payments_1m": 1,
    }


def test_alerts_fire_with_their_inputs_and_downgrade_flag():
    text = """version 1
alert spike when payments_1h >= 50 and decline_spike_pct >= 300
alert chargebacks downgrade when chargeback_ratio_bp_30d >= 100
"""
    ruleset = parse_ruleset(text)
    health = {"payments_1h": 80, "decline_spike_pct": 450, "chargeback_ratio_bp_30d": 100}
    assert evaluate_alerts(ruleset, health) == [
        FiredAlert("spike", False, {"payments_1h": 80, "decline_spike_pct": 450}),
        FiredAlert("chargebacks", True, {"chargeback_ratio_bp_30d": 100}),
    ]
    calm = {"payments_1h": 80, "decline_spike_pct": 120, "chargeback_ratio_bp_30d": 20}
    assert evaluate_alerts(ruleset, calm) == []


# --- the shipped rule set ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_rules():
    return load_ruleset(DEFAULT_RULES)


def test_the_default_rules_load_with_at_least_twenty_rules(default_rules):
    assert default_rules.version == 1
    assert len(default_rules.rules) >= 20
    assert len({rule.name for rule in default_rules.rules}) == len(default_rules.rules)
    assert default_rules.alerts, "the default set also watches merchant health"


def test_the_default_rules_use_every_outcome(default_rules):
    outcomes = {rule.outcome for rule in default_rules.rules}
    assert outcomes >= {Outcome.DELAY, Outcome.REVIEW, Outcome.REJECT}


def test_the_default_limits_cover_every_rating_currency_and_count(default_rules):
    expected = {f"{name}.{c}" for name in ruleset_module.AMOUNT_LIMITS for c in CURRENCIES}
    expected |= set(COUNT_LIMITS)
    expected |= {f"{name}.{c}" for name in ruleset_module.PAYOUT_LIMITS for c in ("CNY", "USD")}
    for rating in "ABCD":
        assert set(default_rules.limits_by_rating[rating]) == expected, rating


def test_the_default_limits_tighten_from_a_to_d(default_rules):
    limits = default_rules.limits_by_rating
    for key in limits["A"]:
        values = [limits[rating][key] for rating in "ABCD"]
        assert values == sorted(values, reverse=True), key
        assert limits["D"][key] < limits["A"][key], key
    assert limits["D"]["single_payment.CNY"] == 50_000
    assert limits["A"]["single_payment.CNY"] == 5_000_000


@pytest.mark.parametrize("rating", ["A", "B", "C", "D"])
@pytest.mark.parametrize("currency", CURRENCIES)
def test_quiet_traffic_fires_nothing(default_rules, rating, currency):
    # A user paying a few times a day with one phone and one card, about their usual amount.
    features = quiet_payment(TYPICAL[currency], currency, **{"merchant.rating": rating})
    limits = default_rules.limits_for(rating, {})
    verdict = evaluate(default_rules, features, limits)
    assert verdict.fired == ()
    assert verdict.outcome is Outcome.APPROVE


def test_a_card_testing_burst_fires_the_card_testing_rule_with_its_inputs(default_rules):
    features = quiet_payment(amount=100, **{"device.payments_1m": 6, "device.payments_1h": 6})
    verdict = evaluate(default_rules, features, {})
    assert verdict.outcome is Outcome.REJECT
    assert (
        FiredRule(
            "card_testing_device_burst",
            Outcome.REJECT,
            0,
            {"device.payments_1m": 6, "amount": 100},
        )
        in verdict.fired
    )


def test_many_accounts_behind_one_ip_are_rejected(default_rules):
    features = quiet_payment(**{"ip.distinct_accounts_1h": 4})
    verdict = evaluate(default_rules, features, {})
    assert verdict.outcome is Outcome.REJECT
    assert [hit.rule for hit in verdict.fired] == ["ip_many_accounts"]


def test_a_new_device_paying_far_above_usual_is_delayed_thirty_seconds(default_rules):
    features = quiet_payment(
        amount=60_000,
        **{"device.first_seen": True, "user.amount_vs_usual_pct": 1_000, "ip.first_seen": False},
    )
    verdict = evaluate(default_rules, features, {})
    assert (verdict.outcome, verdict.delay_seconds) == (Outcome.DELAY, 30)
    assert [hit.rule for hit in verdict.fired] == ["new_device_large_amount"]


def test_a_d_rated_merchants_large_payment_goes_to_review(default_rules):
    features = quiet_payment(amount=150_000, **{"merchant.rating": "D"})
    verdict = evaluate(default_rules, features, {})
    assert verdict.outcome is Outcome.REVIEW
    assert "d_merchant_large_amount" in [hit.rule for hit in verdict.fired]


def test_a_payment_over_the_d_rating_single_limit_is_rejected(default_rules):
    features = quiet_payment(amount=50_001, **{"merchant.rating": "D"})
    verdict = evaluate(default_rules, features, default_rules.limits_for("D", {}))
    assert verdict.outcome is Outcome.REJECT
    assert verdict.fired[0].rule == "limit.single_payment"


def test_a_merchant_health_crisis_fires_a_downgrading_alert(default_rules):
    health = {name: 0 for name in HEALTH_FEATURES}
    health.update(rating="B", approved_30d=1_000, chargeback_ratio_bp_30d=150)
    fired = evaluate_alerts(default_rules, health)
    assert [(alert.alert, alert.downgrade) for alert in fired] == [("chargeback_ratio_high", True)]


# --- the user documentation -----------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "risk-rules.md"


def test_the_documentation_lists_every_feature():
    text = DOCS.read_text()
    catalogue = {**PAYMENT_FEATURES, **HEALTH_FEATURES}
    missing = [name for name in catalogue if f"`{name}`" not in text]
    assert missing == []


def test_the_documented_error_example_is_what_loading_reports():
    section = DOCS.read_text().split("## Errors", 1)[1]
    blocks = section.split("```")
    rule_file, report = blocks[1].strip("\n") + "\n", blocks[3].strip("\n")
    with pytest.raises(RuleSetError) as caught:
        parse_ruleset(rule_file, source="team.rules")
    assert str(caught.value) == report
