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
