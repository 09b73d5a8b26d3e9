"""Money: integer minor units rendered with the currency's own number of decimals."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from events.money import Money, UnknownCurrency, currency_exponent, is_known_currency


@pytest.mark.parametrize(
    ("amount_minor", "currency", "shown"),
    [
        (12345, "CNY", "123.45 CNY"),
        (5, "CNY", "0.05 CNY"),
        (100, "CNY", "1.00 CNY"),
        (0, "CNY", "0.00 CNY"),
        (1234, "JPY", "1234 JPY"),
        (0, "JPY", "0 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (5, "KWD", "0.005 KWD"),
        (1_000_000, "KWD", "1000.000 KWD"),
    ],
)
def test_money_is_shown_with_the_currencys_minor_digits(amount_minor, currency, shown):
    assert str(Money(amount_minor, currency)) == shown


@pytest.mark.parametrize(
    ("amount_minor", "currency", "shown"),
    [
        (-5, "CNY", "-0.05 CNY"),
        (-123456, "CNY", "-1234.56 CNY"),
        (-1234, "JPY", "-1234 JPY"),
        (-1, "KWD", "-0.001 KWD"),
    ],
)
def test_negative_amounts_keep_the_sign_in_front_of_the_whole_amount(amount_minor, currency, shown):
    assert str(Money(amount_minor, currency)) == shown


@pytest.mark.parametrize(("currency", "digits"), [("CNY", 2), ("USD", 2), ("JPY", 0), ("KWD", 3)])
def test_currency_exponent_of_real_currencies(currency, digits):
    assert currency_exponent(currency) == digits
    assert is_known_currency(currency)


@pytest.mark.parametrize(
    "code",
    [
        "XYZ",  # not a code at all
        "cny",  # codes are upper case
        "Cny",
        " CNY",
        "",
        "XAU",  # gold: no minor unit
        "XXX",  # "no currency"
        "XTS",  # testing code
    ],
)
def test_codes_nobody_can_pay_in_are_unknown_currencies(code):
    with pytest.raises(UnknownCurrency):
        Money(100, code)
    with pytest.raises(UnknownCurrency):
        currency_exponent(code)
    assert not is_known_currency(code)


def test_unknown_currency_is_a_value_error_so_generic_handlers_catch_it():
    with pytest.raises(ValueError, match="XYZ"):
        Money(1, "XYZ")


@pytest.mark.parametrize("amount", [1.0, 12.5, True, False, Decimal("1.00"), "100", None])
def test_amount_minor_must_be_a_real_int(amount):
    with pytest.raises(TypeError, match="amount_minor"):
        Money(amount, "CNY")


def test_money_is_immutable_and_compared_by_value():
    price = Money(600, "CNY")
    assert price == Money(600, "CNY")
    assert price != Money(600, "JPY")
    assert price != Money(601, "CNY")
    with pytest.raises(dataclasses.FrozenInstanceError):
        price.amount_minor = 1  # type: ignore[misc]
