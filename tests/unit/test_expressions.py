"""The rule expression language: parsing, precedence, types, evaluation and error positions."""

from __future__ import annotations

import pytest

from streams.risk.expressions import RuleSyntaxError, parse_expression, tokenize
from streams.risk.features import HEALTH_FEATURES, PAYMENT_FEATURES, FeatureType

CATALOGUE = {
    "amount": FeatureType.INT,
    "limit": FeatureType.INT,
    "currency": FeatureType.STR,
    "device.first_seen": FeatureType.BOOL,
    "device.payments_1m": FeatureType.INT,
    "user.present": FeatureType.BOOL,
}
FEATURES = {
    "amount": 400,
    "limit": 1_000,
    "currency": "CNY",
    "device.first_seen": True,
    "device.payments_1m": 6,
    "user.present": False,
}


def holds(text: str, **overrides: int | bool | str) -> bool:
    return parse_expression(text, CATALOGUE).evaluate({**FEATURES, **overrides})


def syntax_error(text: str, catalogue: dict[str, FeatureType] = CATALOGUE) -> RuleSyntaxError:
    with pytest.raises(RuleSyntaxError) as caught:
        parse_expression(text, catalogue)
    return caught.value


# --- evaluation ---------------------------------------------------------------------------


def test_card_testing_condition_holds_for_a_burst_of_small_payments():
    text = "device.payments_1m >= 5 and amount <= 500"
    assert holds(text)
    assert not holds(text, amount=501)
    assert not holds(text, **{"device.payments_1m": 4})


@pytest.mark.parametrize(
    ("operator", "below", "equal", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        (">", False, False, True),
        (">=", False, True, True),
        ("==", False, True, False),
        ("!=", True, False, True),
    ],
)
def test_comparison_operators_at_the_boundary(operator, below, equal, above):
    expression = parse_expression(f"amount {operator} 400", CATALOGUE)
    assert [expression.evaluate({"amount": n}) for n in (399, 400, 401)] == [below, equal, above]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("not false and false", False),  # not binds tighter than and
        ("not (false and false)", True),
        ("not not true", True),
        ("1 + 2 * 3 == 7", True),  # * binds tighter than +
        ("(1 + 2) * 3 == 9", True),
        ("10 - 3 - 2 == 5", True),  # left associative
        ("-amount + 500 == 100", True),
        ("- -3 == 3", True),
        ("amount * 2 > limit - 300", True),  # arithmetic before comparison
        ("(amount > 1) == true", True),  # a comparison in parentheses is a bool operand
    ],
)
def test_precedence_and_associativity(text, expected):
    assert holds(text) is expected


def test_integer_literals_allow_underscore_separators():
    assert holds("limit == 1_000")
    assert holds("amount * 25 == 10_000")


def test_membership_in_a_list_of_strings_and_of_ints():
    assert holds('currency in ["USD", "CNY"]')
    assert not holds('currency in ["USD", "EUR"]')
    assert holds('currency not in ["USD", "EUR"]')
    assert holds("amount in [100, 400, -5]")
    assert holds("amount + 1 not in [400]")


def test_bool_features_stand_alone_and_compare_with_bool_literals():
    assert holds("device.first_seen")
    assert holds("device.first_seen == true")
    assert holds("device.first_seen != user.present")
    assert not holds("user.present")


def test_strings_may_contain_escaped_quotes_backslashes_and_hashes():
    assert holds(r'currency == "a\"b"', currency='a"b')
    assert holds(r'currency == "a\\b"', currency="a\\b")
    assert holds('currency == "#1"', currency="#1")


def test_features_compared_with_features():
    assert holds("amount < limit")
    assert not holds("amount >= limit")


@pytest.mark.parametrize("count", [2, 3, 5])
def test_long_and_or_chains_short_circuit_in_order(count):
    # Every operand but the last reads a feature that is absent from the map: a chain that
    # short-circuits never reaches them.
    conjunction = " and ".join(["false"] + ["user.present"] * (count - 1))
    disjunction = " or ".join(["true"] + ["user.present"] * (count - 1))
    assert parse_expression(conjunction, CATALOGUE).evaluate({}) is False
    assert parse_expression(disjunction, CATALOGUE).evaluate({}) is True


@pytest.mark.parametrize("count", [2, 3, 4, 6])
def test_long_chains_are_true_only_when_every_operand_is(count):
    names = [f"amount > {n}" for n in range(count)]
    conjunction = parse_expression(" and ".join(names), CATALOGUE)
    disjunction = parse_expression(" or ".join(names), CATALOGUE)
    assert conjunction.evaluate({"amount": count}) is True
    assert conjunction.evaluate({"amount": count - 1}) is False
    assert disjunction.evaluate({"amount": 1}) is True
    assert disjunction.evaluate({"amount": 0}) is False


def test_a_missing_feature_raises_key_error():
    expression = parse_expression("amount > 5", CATALOGUE)
    with pytest.raises(KeyError, match="amount"):
        expression.evaluate({"limit": 1})


def test_names_are_the_features_read_in_order_of_first_appearance():
    expression = parse_expression(
        'amount > 1 and (device.payments_1m > amount or currency == "CNY") and amount < 9',
        CATALOGUE,
    )
    assert expression.names == ("amount", "device.payments_1m", "currency")
    assert parse_expression("1 == 1", CATALOGUE).names == ()


def test_source_is_the_text_without_surrounding_space():
    assert parse_expression("  amount > 1 \t", CATALOGUE).source == "amount > 1"


def test_every_real_feature_name_parses():
    for name, kind in {**PAYMENT_FEATURES, **HEALTH_FEATURES}.items():
        catalogue = PAYMENT_FEATURES if name in PAYMENT_FEATURES else HEALTH_FEATURES
        literal = {"int": "0", "bool": "true", "str": '""'}[kind]
        assert parse_expression(f"{name} == {literal}", catalogue).names == (name,)


# --- errors and their positions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("amount $ 3", 8, "unexpected character '$'"),
        ("amount = 3", 8, "unexpected character '=' (did you mean '=='?)"),
        (
            "amount / 2 > 1",
            8,
            "unexpected character '/' (there is no division: use the ratio features)",
        ),
        (
            "currency == 'CNY'",
            13,
            'unexpected character "\'" (strings are written in double quotes)',
        ),
        ('currency == "CNY', 13, "unterminated string"),
        (
            "amount > 1.5",
            10,
            "malformed number '1.5' (no decimals: amounts are integer minor units)",
        ),
        ("amount > 10__000", 10, "malformed number '10__000'"),
        ("amount > 10_", 10, "malformed number '10_'"),
        ("amount > 5abc", 10, "malformed number '5abc'"),
        (
            "devce.payments_1m > 1",
            1,
            "unknown feature 'devce.payments_1m' (did you mean 'device.payments_1m'?)",
        ),
        ("zzz > 1", 1, "unknown feature 'zzz'"),
        ('amount + "a" > 1', 8, "'+' needs int operands, got str"),
        ("device.first_seen * 2 > 1", 19, "'*' needs int operands, got bool"),
        ("-currency == 1", 1, "'-' needs int operands, got str"),
        ('currency < "USD"', 10, "'<' needs int operands, got str"),
        ("amount >= true", 8, "'>=' needs int operands, got bool"),
        ('amount == "400"', 8, "'==' needs operands of one type, got int and str"),
        ("user.present != 1", 14, "'!=' needs operands of one type, got bool and int"),
        ("amount and true", 8, "'and' needs bool operands, got int"),
        ("true or amount", 6, "'or' needs bool operands, got int"),
        ("not currency", 1, "'not' needs bool operands, got str"),
        ('amount in [1, "2"]', 15, "list element is str but the value tested is int"),
        ("currency in [true]", 14, "list element is bool but the value tested is str"),
        ("amount in [limit]", 12, "list elements must be literals"),
        ("amount in []", 12, "empty list: nothing is in it"),
        ("amount in 5", 11, "expected '[' opening a list, got '5'"),
        ("amount in [1 2]", 14, "expected ',' or ']', got '2'"),
        ("amount < 1 < 2", 12, "comparisons do not chain: join them with 'and'"),
        ("amount == 1 in [true]", 13, "comparisons do not chain: join them with 'and'"),
        ("amount in [1] not in [true]", 15, "comparisons do not chain: join them with 'and'"),
        ("amount == 1 not true", 13, "unexpected 'not' after a complete expression"),
        ("amount > 1 amount", 12, "unexpected 'amount' after a complete expression"),
        ("amount > 1)", 11, "unexpected ')' after a complete expression"),
        ("(amount > 1", 12, "expected ')', got the end of the expression"),
        ("amount >", 9, "expected a value, got the end of the expression"),
        ("and amount", 1, "expected a value, got 'and'"),
        ("amount + 1", 1, "the expression must be a bool, not int"),
        ('"CNY"', 1, "the expression must be a bool, not str"),
        ("", 1, "empty expression"),
        ("   ", 4, "empty expression"),
    ],
)
def test_errors_name_the_problem_and_its_column(text, column, message):
    error = syntax_error(text)
    assert (error.line, error.column, error.message) == (1, column, message)


def test_error_positions_are_relative_to_where_the_text_starts():
    with pytest.raises(RuleSyntaxError) as caught:
        parse_expression("amount > 1 and devce.first_seen", CATALOGUE, line=7, column=30)
    assert (caught.value.line, caught.value.column) == (7, 45)
    assert str(caught.value) == (
        "line 7, column 45: unknown feature 'devce.first_seen' (did you mean 'device.first_seen'?)"
    )


def test_error_positions_follow_newlines_inside_the_text():
    with pytest.raises(RuleSyntaxError) as caught:
        parse_expression("amount > 1 and\n   amount $ 2", CATALOGUE, line=3, column=20)
    assert (caught.value.line, caught.value.column) == (4, 11)


def test_a_syntax_error_is_a_value_error_with_a_readable_message():
    error = syntax_error("amount > ")
    assert isinstance(error, ValueError)
    assert str(error) == "line 1, column 10: expected a value, got the end of the expression"


def test_keywords_are_not_feature_names():
    tokens = tokenize("not x in [true, false] or y and z")
    keywords = [token.text for token in tokens if token.kind == "keyword"]
    assert keywords == ["not", "in", "true", "false", "or", "and"]
    assert tokens[-1].kind == "end"
