"""Money: integer minor units plus an ISO 4217 currency, never a float."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from iso4217 import Currency


class UnknownCurrency(ValueError):
    """The code is not an ISO 4217 currency that payments can be made in."""


@lru_cache(maxsize=512)
def currency_exponent(code: str) -> int:
    """Number of minor-unit digits of ``code`` (2 for CNY, 0 for JPY); raises UnknownCurrency."""
    try:
        exponent = Currency(code).exponent
    except ValueError:
        raise UnknownCurrency(f"{code!r} is not an ISO 4217 currency code") from None
    if exponent is None:
        # Funds, metals and testing codes (XAU, XTS, XXX) have no minor unit: nobody pays in them.
        raise UnknownCurrency(f"{code!r} is not a currency payments can be made in")
    return int(exponent)


def is_known_currency(code: str) -> bool:
    """True for an ISO 4217 code that has a minor unit."""
    try:
        currency_exponent(code)
    except UnknownCurrency:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of an ISO 4217 currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError(f"amount_minor must be an int, got {type(self.amount_minor).__name__}")
        currency_exponent(self.currency)

    def __str__(self) -> str:
        exponent = currency_exponent(self.currency)
        sign = "-" if self.amount_minor < 0 else ""
        units, minor = divmod(abs(self.amount_minor), 10**exponent)
        fraction = f".{minor:0{exponent}d}" if exponent else ""
        return f"{sign}{units}{fraction} {self.currency}"


def decimal_text(amount_minor: int, currency: str) -> str:
    """The amount as the channels write it, in major units with every minor digit: 1999 CNY is
    '19.99', 5 JPY is '5'."""
    exponent = currency_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    units, minor = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{units}.{minor:0{exponent}d}" if exponent else f"{sign}{units}"


class MalformedAmount(ValueError):
    """A decimal amount that is not a whole number of the currency's minor units."""


def parse_decimal_text(text: str, currency: str) -> int:
    """Minor units of a channel's decimal amount ('19.99' CNY is 1999), read exactly, never
    through a float; raises MalformedAmount for text that is not such an amount."""
    exponent = currency_exponent(currency)
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    units, _, fraction = body.lstrip("-").partition(".")
    if not units.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > exponent:
        raise MalformedAmount(f"{text!r} is not an amount in {currency}")
    scale: int = 10**exponent
    return sign * (int(units) * scale + int(fraction.ljust(exponent, "0") or "0"))
