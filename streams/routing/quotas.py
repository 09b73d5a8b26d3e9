"""Daily quotas: how much each channel, and each merchant on each channel, took today.

Usage is counted per business date (ISO text, ``2024-05-01``), as a count of payments and an
amount per currency in minor units. Only the newest ``RETAINED_DATES`` dates are kept: a new
date drops the oldest, so yesterday's usage never holds back today's payments. The book is
plain data: its rows are JSON arrays, written to a changelogged store by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Today's and the day before's: a payment of yesterday's business date can still arrive just
# after midnight and must be counted where it belongs.
RETAINED_DATES = 2

# (business date, channel, merchant id or None for the channel as a whole)
UsageKey = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class DailyQuota:
    """At most ``count`` payments and ``amounts[currency]`` minor units a business day; a cap
    that is not set does not apply."""

    count: int | None = None
    amounts: Mapping[str, int] = field(default_factory=dict)


# The quota of a channel without one; compared by identity to skip quota checks altogether.
NO_QUOTA = DailyQuota()


class QuotaScope(StrEnum):
    """Which cap a payment would break: the channel's own or the merchant's on the channel,
    by count or by amount."""

    CHANNEL_COUNT = "CHANNEL_COUNT_QUOTA"
    CHANNEL_AMOUNT = "CHANNEL_AMOUNT_QUOTA"
    MERCHANT_COUNT = "MERCHANT_COUNT_QUOTA"
    MERCHANT_AMOUNT = "MERCHANT_AMOUNT_QUOTA"


@dataclass(frozen=True, slots=True)
class QuotaBreach:
    """A cap the payment would break: what was used before it, and the cap."""

    scope: QuotaScope
    used: int
    cap: int
    currency: str | None = None

    def describe(self) -> str:
        """One line, e.g. 'over the merchant's daily count quota: 20 of 20 used'."""
        whose = "channel's" if self.scope.name.startswith("CHANNEL") else "merchant's"
        unit = f" amount quota in {self.currency}" if self.currency else " count quota"
        return f"over the {whose} daily{unit}: {self.used} of {self.cap} used"


@dataclass(slots=True)
class Usage:
    """What one channel (or one merchant on it) took on one business date."""

    count: int = 0
    amounts: dict[str, int] = field(default_factory=dict)


_NOTHING = Usage()
_NO_DAY: dict[tuple[str, str | None], Usage] = {}


def usage_key(business_date: str, channel: str, merchant_id: str | None = None) -> str:
    """The store key of one usage row: ``date|channel`` or ``date|channel|merchant``."""
    parts = (
        (business_date, channel) if merchant_id is None else (business_date, channel, merchant_id)
    )
    return "|".join(parts)


class QuotaBook:
    """Daily usage per channel and per (merchant, channel), for the retained business dates."""

    def __init__(self) -> None:
        self._days: dict[str, dict[tuple[str, str | None], Usage]] = {}
        self._changes: dict[str, list[Any] | None] = {}

    def usage(self, business_date: str, channel: str, merchant_id: str | None = None) -> Usage:
        """A copy of the usage so far (nothing used when the date or key is unknown)."""
        usage = self._days.get(business_date, _NO_DAY).get((channel, merchant_id), _NOTHING)
        return Usage(usage.count, dict(usage.amounts))

    def would_exceed(
        self,
        business_date: str,
        channel: str,
        merchant_id: str,
        currency: str,
        amount_minor: int,
        channel_quota: DailyQuota,
        merchant_quota: DailyQuota,
    ) -> QuotaBreach | None:
        """The first cap one more payment of ``amount_minor`` would break, or None."""
        day = self._days.get(business_date, _NO_DAY)
        breach = None
        if channel_quota is not NO_QUOTA:
            usage = day.get((channel, None), _NOTHING)
            breach = _breach(usage, channel_quota, currency, amount_minor, merchant=False)
        if breach is None and merchant_quota is not NO_QUOTA:
            usage = day.get((channel, merchant_id), _NOTHING)
            breach = _breach(usage, merchant_quota, currency, amount_minor, merchant=True)
        return breach

    def record(
        self, business_date: str, channel: str, merchant_id: str, currency: str, amount_minor: int
    ) -> None:
        """Count one payment routed to ``channel``; a date older than those retained is past
        and is not counted."""
        day = self._day(business_date)
        if day is None:
            return
        for scope in ((channel, None), (channel, merchant_id)):
            usage = day.get(scope)
            if usage is None:
                usage = day[scope] = Usage()
            usage.count += 1
            usage.amounts[currency] = usage.amounts.get(currency, 0) + amount_minor
            self._changes[usage_key(business_date, *scope)] = _row(business_date, scope, usage)

    def take_changes(self) -> dict[str, list[Any] | None]:
        """The rows changed since the last call, by store key; None marks a dropped row."""
        changes, self._changes = self._changes, {}
        return changes

    def to_rows(self) -> list[list[Any]]:
        """Every usage row: ``[date, channel, merchant or null, count, {currency: amount}]``."""
        return [
            _row(date, scope, usage)
            for date, day in self._days.items()
            for scope, usage in day.items()
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[list[Any]]) -> QuotaBook:
        """The book ``to_rows`` (or the rows of its store) described."""
        book = cls()
        for date, channel, merchant_id, count, amounts in rows:
            day = book._days.setdefault(date, {})
            day[(channel, merchant_id)] = Usage(count, dict(amounts))
        return book

    def _day(self, business_date: str) -> dict[tuple[str, str | None], Usage] | None:
        day = self._days.get(business_date)
        if day is not None:
            return day
        if len(self._days) >= RETAINED_DATES and business_date < min(self._days):
            return None
        day = self._days[business_date] = {}
        while len(self._days) > RETAINED_DATES:
            self._drop(min(self._days))
        return day

    def _drop(self, business_date: str) -> None:
        for channel, merchant_id in self._days.pop(business_date):
            self._changes[usage_key(business_date, channel, merchant_id)] = None


def _row(business_date: str, scope: tuple[str, str | None], usage: Usage) -> list[Any]:
    return [business_date, scope[0], scope[1], usage.count, dict(usage.amounts)]


def _breach(
    usage: Usage, quota: DailyQuota, currency: str, amount_minor: int, *, merchant: bool
) -> QuotaBreach | None:
    if quota.count is not None and usage.count + 1 > quota.count:
        scope = QuotaScope.MERCHANT_COUNT if merchant else QuotaScope.CHANNEL_COUNT
        return QuotaBreach(scope, usage.count, quota.count)
    cap = quota.amounts.get(currency)
    used = usage.amounts.get(currency, 0)
    if cap is not None and used + amount_minor > cap:
        scope = QuotaScope.MERCHANT_AMOUNT if merchant else QuotaScope.CHANNEL_AMOUNT
        return QuotaBreach(scope, used, cap, currency)
    return None
