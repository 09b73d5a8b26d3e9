"""Routing policies: the shipped default, fees, and every problem reported at its key and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from events.records import PaymentMethod
from streams.routing.health import HealthSettings
from streams.routing.policy import Fee, RoutingRule, SuccessRateSettings, fee_minor
from streams.routing.policy_file import PolicyError, default_policy, load_policy, parse_policy
from streams.routing.quotas import NO_QUOTA, DailyQuota

MINIMAL = """\
version = 3

[channels.card]
methods = ["CARD"]
currencies = ["CNY", "USD"]
fees.CARD = { bps = 180, fixed = { CNY = 30, USD = 30 } }

[channels.alipay]
enabled = false
methods = ["ALIPAY"]
currencies = ["CNY"]
fees.ALIPAY = { bps = 60, fixed = { CNY = 0 } }
"""


def problems_of(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def only_problem(text: str) -> tuple[int | None, str, str]:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line of ``text`` containing ``fragment``."""
    return next(n for n, line in enumerate(text.split("\n"), 1) if fragment in line)


# --- loading --------------------------------------------------------------------------------


def test_a_minimal_policy_loads_with_defaults_for_every_setting():
    policy = parse_policy(MINIMAL)
    assert policy.version == 3
    assert list(policy.channels) == ["card", "alipay"]
    assert policy.static_priority == ("card", "alipay")  # the file's order when not written
    assert policy.kill_switch is False
    assert policy.rules == ()
    assert policy.merchants == {}
    assert policy.success_rate == SuccessRateSettings()
    assert policy.health == HealthSettings()
    assert policy.digest == hashlib.sha256(MINIMAL.encode()).hexdigest()
    card = policy.channels["card"]
    assert card.enabled and not policy.channels["alipay"].enabled
    assert card.methods == (PaymentMethod.CARD,)
    assert card.fees[PaymentMethod.CARD] == Fee(180, {"CNY": 30, "USD": 30})
    assert card.daily_quota is NO_QUOTA and card.merchant_daily_quota is NO_QUOTA


def test_the_default_policy_has_two_card_acquirers_with_different_fees():
    policy = default_policy()
    assert list(policy.channels) == ["alipay", "wechat", "card", "card_b"]
    assert policy.static_priority == ("alipay", "wechat", "card", "card_b")
    card, card_b = policy.channels["card"], policy.channels["card_b"]
    assert card.methods == card_b.methods == (PaymentMethod.CARD,)
    assert set(card_b.currencies) < set(card.currencies)
    assert card.fees[PaymentMethod.CARD].bps > card_b.fees[PaymentMethod.CARD].bps
    assert card_b.daily_quota.count == 500_000
    assert policy.success_rate == SuccessRateSettings(exploration_bp=500, band_bp=200)
    assert policy.health.failures_in_a_row == 5
    assert [rule.name for rule in policy.rules] == ["large_cny_cards_on_card", "usd_cards_ramp_up"]


def test_load_policy_reads_a_file_and_names_it_in_problems(tmp_path):
    path = tmp_path / "routing.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_policy(path).version == 3
    path.write_text(MINIMAL.replace("version = 3", "version = 0"), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}:1: version: must be at least 1")


def test_a_full_policy_loads_every_table():
    text = (
        MINIMAL
        + """
[channels.card.daily_quota]
count = 1000
amount = { CNY = 5000000 }

[channels.card.merchant_daily_quota]
count = 10

[merchants.shop-0042]
channels = ["card"]
daily_quota.card = { count = 3, amount = { USD = 10000 } }

[[rules]]
name = "big_cny_cards"
method = ["CARD"]
currency = ["CNY"]
amount = { min = 100000, max = 900000 }
merchants = ["shop-0042"]
regions = ["CN", "HK"]
channels = ["card"]
weights = [1]
"""
    )
    policy = parse_policy(text)
    card = policy.channels["card"]
    assert card.daily_quota == DailyQuota(1000, {"CNY": 5_000_000})
    assert card.merchant_daily_quota == DailyQuota(10, {})
    merchant = policy.merchants["shop-0042"]
    assert merchant.channels == frozenset({"card"})
    assert merchant.daily_quotas == {"card": DailyQuota(3, {"USD": 10_000})}
    (rule,) = policy.rules
    assert rule == RoutingRule(
        name="big_cny_cards",
        channels=("card",),
        weights=(1,),
        methods=frozenset({PaymentMethod.CARD}),
        currencies=frozenset({"CNY"}),
        min_amount=100_000,
        max_amount=900_000,
        merchants=frozenset({"shop-0042"}),
        regions=frozenset({"CN", "HK"}),
        line=line_of(text, "[[rules]]"),
    )


# --- fees -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bps", "fixed", "fee"),
    [
        (10_000, 180, 30, 210),  # 180 exactly
        (25, 200, 0, 1),  # 0.5 rounds half up
        (24, 200, 0, 0),  # 0.48 rounds down
        (75, 200, 0, 2),  # 1.5 rounds half up
        (1, 0, 7, 7),  # the fixed part alone
        (999_999_999_999, 60, 0, 6_000_000_000),  # no float anywhere
    ],
)
def test_fees_are_integer_minor_units_rounded_half_up(amount, bps, fixed, fee):
    assert fee_minor(amount, bps, fixed) == fee
    assert Fee(bps, {"CNY": fixed}).for_amount(amount, "CNY") == fee


# --- problems, each at its key and line ------------------------------------------------------


def test_an_unknown_channel_in_a_rule_names_the_rule_and_its_line():
    text = MINIMAL + '\n[[rules]]\nname = "r"\nchannels = ["card", "wechat"]\n'
    line, path, message = only_problem(text)
    assert (line, path) == (line_of(text, '"wechat"'), "rules[0].channels")
    assert message == "unknown channel 'wechat'"


def test_a_fee_that_is_not_whole_basis_points_is_refused_at_its_line():
    text = MINIMAL.replace("bps = 180", "bps = 1.8")
    line, path, message = only_problem(text)
    assert (line, path) == (line_of(text, "bps = 1.8"), "channels.card.fees.CARD.bps")
    assert "whole number of basis points" in message


@pytest.mark.parametrize(
    ("fee", "path", "expected"),
    [
        ("{ bps = 180 }", "channels.card.fees.CARD.fixed", "missing the fixed fee in CNY, USD"),
        ("{ bps = 180, fixed = { CNY = 30 } }", "channels.card.fees.CARD.fixed", "in USD"),
        ("{ bps = 180, fixed = { CNY = 3.5, USD = 0 } }", "channels.card.fees.CARD.fixed.CNY", ""),
        ("{ bps = 10001, fixed = { CNY = 0, USD = 0 } }", "channels.card.fees.CARD.bps", "10000"),
        ("{ bps = -1, fixed = { CNY = 0, USD = 0 } }", "channels.card.fees.CARD.bps", "at least"),
        ("{ fixed = { CNY = 0, USD = 0 } }", "channels.card.fees.CARD", "missing 'bps'"),
        (
            "{ bps = 1, fixed = { CNY = 0, USD = 0, EUR = 0 } }",
            "channels.card.fees.CARD.fixed.EUR",
            "",
        ),
    ],
)
def test_bad_fees_are_refused(fee, path, expected):
    text = MINIMAL.replace("{ bps = 180, fixed = { CNY = 30, USD = 30 } }", fee)
    line, found, message = only_problem(text)
    assert (line, found) == (line_of(text, "fees.CARD"), path)
    assert expected in message


def test_a_method_without_a_fee_is_refused():
    text = MINIMAL.replace("fees.CARD = { bps = 180, fixed = { CNY = 30, USD = 30 } }\n", "")
    line, path, message = only_problem(text)
    assert (line, path) == (line_of(text, "[channels.card]"), "channels.card.fees")
    assert message.startswith("missing the fee for CARD")


def test_a_channel_declared_twice_is_refused_at_the_second_declaration():
    text = MINIMAL + '\n[channels.card]\nmethods = ["CARD"]\n'
    line, path, message = only_problem(text)
    assert line == len(MINIMAL.split("\n")) + 1
    assert path == "" and message.startswith("not valid TOML")


def test_an_unknown_key_is_refused_with_the_keys_expected():
    text = MINIMAL.replace("enabled = false", "enabeld = false")
    line, path, message = only_problem(text)
    assert (line, path) == (line_of(text, "enabeld"), "channels.alipay.enabeld")
    assert message.startswith("unknown key 'enabeld': expected enabled, methods, currencies")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("exploration_bp = 0.05", "expected a whole number of basis points (500 is 5%)"),
        ("exploration_bp = 20000", "must be at least 0 and at most 10000, got 20000"),
        ("band_bp = -200", "must be at least 0 and at most 10000, got -200"),
        ('band_bp = "2%"', "expected a whole number of basis points (500 is 5%)"),
    ],
)
def test_a_bad_share_is_refused_at_its_line(setting, expected):
    text = MINIMAL + f"\n[success_rate]\n{setting}\n"
    line, path, message = only_problem(text)
    assert (line, path) == (line_of(text, setting), f"success_rate.{setting.split()[0]}")
    assert expected in message


@pytest.mark.parametrize(
    ("table", "expected_path", "expected"),
    [
        ("[health]\nhalf_life_seconds = 0", "health.half_life_seconds", "at least 1"),
        ("[health]\nprior_weight = 0", "health.prior_weight", "at least 1"),
        ("[elimination]\nfailures_in_a_row = 0", "elimination.failures_in_a_row", "at least 1"),
        ("[elimination]\nprobe_interval_seconds = true", "elimination.probe_interval_seconds", ""),
        ("[elimination]\nprobe_after = 3", "elimination.probe_after", "unknown key"),
    ],
)
def test_bad_health_settings_are_refused(table, expected_path, expected):
    line, path, message = only_problem(MINIMAL + "\n" + table + "\n")
    assert path == expected_path and expected in message
    assert line == len(MINIMAL.split("\n")) + 2  # after a blank line and the table's header


@pytest.mark.parametrize(
    ("rule", "expected_path", "expected"),
    [
        ('name = "r"\nchannels = []', "rules[0].channels", "non-empty array"),
        ('channels = ["card"]', "rules[0].name", "missing 'name'"),
        ('name = "Big Cards"\nchannels = ["card"]', "rules[0].name", "is not a rule name"),
        ('name = "r"\nmethod = ["CASH"]\nchannels = ["card"]', "rules[0].method", "CASH"),
        ('name = "r"\ncurrency = ["XYZ"]\nchannels = ["card"]', "rules[0].currency", "ISO 4217"),
        ('name = "r"\nregions = ["cn"]\nchannels = ["card"]', "rules[0].regions", "region"),
        ('name = "r"\nchannels = ["card", "card"]', "rules[0].channels", "listed twice"),
        ('name = "r"\nmethod = ["ALIPAY"]\nchannels = ["card"]', "rules[0].channels", "takes no"),
        ('name = "r"\nchannels = ["card"]\nweights = [1, 2]', "rules[0].weights", "per channel"),
        ('name = "r"\nchannels = ["card"]\nweights = [0]', "rules[0].weights", "not all 0"),
        (
            'name = "r"\nchannels = ["card"]\namount = { min = 1 }',
            "rules[0].amount",
            "one currency",
        ),
        (
            'name = "r"\ncurrency = ["CNY"]\nchannels = ["card"]\namount = { min = 9, max = 9 }',
            "rules[0].amount",
            "below 'max'",
        ),
        ('name = "r"\nchannels = ["card"]\nwhen = "amount > 5"', "rules[0].when", "unknown key"),
    ],
)
def test_bad_rules_are_refused(rule, expected_path, expected):
    line, path, message = only_problem(MINIMAL + "\n[[rules]]\n" + rule + "\n")
    assert path == expected_path and expected in message, message
    assert line is not None and line > len(MINIMAL.split("\n"))


def test_two_rules_with_one_name_are_refused_at_the_second():
    rule = '[[rules]]\nname = "r"\nchannels = ["card"]\n'
    text = MINIMAL + "\n" + rule + "\n" + rule
    line, path, message = only_problem(text)
    assert path == "rules[1].name" and message == "rule 'r' is already rules[0]"
    assert line == len(text.split("\n")) - 2


def test_merchant_problems_are_refused():
    text = MINIMAL + '\n[merchants.shop-1]\nchannels = ["card", "wechat"]\n'
    text += "daily_quota.alipay = { count = -1 }\n"
    problems = problems_of(text)
    assert [(path, message) for _, path, message in problems] == [
        ("merchants.shop-1.channels", "unknown channel 'wechat'"),
        ("merchants.shop-1.daily_quota.alipay.count", "must be at least 0, got -1"),
    ]


def test_every_problem_is_reported_at_once_in_line_order():
    text = MINIMAL.replace("version = 3", "version = 0").replace("bps = 60", "bps = 0.6")
    text += '\nkill_switch = "on"\n'
    problems = problems_of(text)
    assert [path for _, path, _ in problems] == [
        "version",
        "channels.alipay.fees.ALIPAY.bps",
        "channels.alipay.kill_switch",
    ]
    assert [line for line, _, _ in problems] == sorted(line for line, _, _ in problems)


def test_a_policy_without_version_or_channels_is_refused():
    problems = problems_of("kill_switch = true\n")
    assert [(line, path) for line, path, _ in problems] == [(None, ""), (None, "channels")]


def test_a_static_priority_naming_an_unknown_channel_is_refused():
    text = 'static_priority = ["card", "wechat"]\n' + MINIMAL
    assert only_problem(text) == (1, "static_priority", "unknown channel 'wechat'")


def test_a_syntax_error_names_its_line():
    text = MINIMAL.replace("enabled = false", "enabled = ")
    line, path, message = only_problem(text)
    assert (line, path) == (line_of(text, "enabled = "), "")
    assert message.startswith("not valid TOML")


def test_the_error_text_names_source_line_and_key():
    text = MINIMAL.replace("bps = 180", "bps = 1.8")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="routing.toml")
    line = line_of(text, "bps = 1.8")
    assert str(caught.value).startswith(f"routing.toml:{line}: channels.card.fees.CARD.bps: ")


def test_a_key_after_an_array_written_over_several_lines_is_found_at_its_line():
    text = 'static_priority = [\n  "card",\n  ["alipay"],\n]\n' + MINIMAL.replace(
        "version = 3", "version = 0"
    )
    problems = problems_of(text)
    assert (line_of(text, "version = 0"), "version") in [(line, path) for line, path, _ in problems]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "routing-policy.md"


def test_the_example_in_the_docs_loads():
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(example, source="docs/routing-policy.md")
    assert policy.version == 4
    assert policy.merchants["shop-0042"].channels == frozenset({"alipay", "card"})
    assert fee_minor(23_362, 150, 100) < fee_minor(23_362, 180, 30)  # the break-even it names
    assert fee_minor(23_361, 150, 100) >= fee_minor(23_361, 180, 30)


@pytest.mark.parametrize(
    "mistake",
    [
        ("[channels.card]", "channels = 5"),
        ("[channels.card]", "[[channels]]"),
        ("fees.CARD = { bps = 180, fixed = { CNY = 30, USD = 30 } }", "fees = 3"),
        ("fees.CARD = { bps = 180, fixed = { CNY = 30, USD = 30 } }", "fees.CARD = 3"),
        ("{ CNY = 30, USD = 30 }", "[30, 30]"),
        ('methods = ["CARD"]', 'methods = "CARD"'),
        ('methods = ["CARD"]', "methods = [1]"),
        ("version = 3", 'version = "3"'),
        ("version = 3", "version = 3\nrules = 5"),
        ("version = 3", "version = 3\nrules = [1]"),
        ("version = 3", "version = 3\nmerchants = [1]"),
        ("version = 3", "version = 3\nstatic_priority = 'card'"),
        ("version = 3", "version = 3\nsuccess_rate = 1"),
        ("version = 3", "version = 3\n[merchants.m1]\ndaily_quota = 1"),
        ("version = 3", "version = 3\n[[rules]]\nname = 'r'\nchannels = ['card']\namount = 5"),
        ("version = 3", "version = 3\n[[rules]]\nname = 'r'\nchannels = ['card']\nweights = 1"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_problem_not_a_crash(mistake):
    problems_of(MINIMAL.replace(*mistake, 1))
