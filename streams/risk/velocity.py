"""Velocity state of the risk feature store: what one user, device, ip, account or merchant did.

One entry is kept per value of a dimension (the user "u1", the device "d9") as the value of a
table and is updated once per payment, so it stays small, turns into plain JSON and back
exactly, and an update touches a handful of integers.

Time never goes backwards inside one entry. Each entry keeps a clock, the newest time it has
seen; an observation's effective time is the later of its own time and that clock, and the
clock then advances to it. A late event therefore counts as if it arrived at the entry's current
time. Windows never have to write into the past, buckets that left every window can be dropped
for good, and every count is exact for the documented bucket boundaries.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streams.risk.features import DISTINCT_WINDOWS, PARTNERS, VELOCITY_WINDOWS

BUCKETS = 60
# A partner map holds at most this many values; beyond it the least recently seen is forgotten,
# so distinct counts saturate here (a device with 500 accounts reports 200, still far over any
# sane threshold) and one abused value cannot grow its entry without bound.
DISTINCT_CAP = 200
# Reservations are kept for the two newest business dates: today's, and yesterday's for
# payments still in flight across midnight.
DAYS_KEPT = 2

JsonDict = dict[str, Any]

# Feature names are built once: an observe should not format strings it can look up.
_VELOCITY_NAMES = tuple(
    (suffix, f"payments_{suffix}", f"amount_{suffix}") for suffix in VELOCITY_WINDOWS
)
_DISTINCT_HORIZON_MS = max(DISTINCT_WINDOWS.values()) * 1000
_DISTINCT_NAMES = {
    partner: tuple(
        (f"distinct_{partner}s_{suffix}", seconds * 1000)
        for suffix, seconds in DISTINCT_WINDOWS.items()
    )
    for partner in {partner for partners in PARTNERS.values() for partner in partners}
}


class SlidingWindow:
    """A count and an integer sum over the last ``width_seconds``, kept in 60 buckets.

    Time ``t`` (epoch ms) falls in bucket ``t // bucket_ms``; the window at ``t`` is that bucket
    and the 59 before it, so it reaches back between 59/60 of its width and all of it. Times
    given must not go backwards (the owning entry applies its clock); buckets that fell out of
    the window are dropped as time advances.
    """

    __slots__ = ("amount", "amounts", "bucket_ms", "count", "counts", "indices", "width_seconds")

    def __init__(self, width_seconds: int) -> None:
        if width_seconds <= 0 or width_seconds % BUCKETS:
            raise ValueError(f"window width {width_seconds}s is not a positive multiple of 60s")
        self.width_seconds = width_seconds
        self.bucket_ms = width_seconds * 1000 // BUCKETS
        # Only buckets that were added to, oldest first, as three parallel lists (they copy and
        # serialise as a whole).
        self.indices: list[int] = []
        self.counts: list[int] = []
        self.amounts: list[int] = []
        # Running totals as of the newest add or prune: reading a pruned window is O(1).
        self.count = 0
        self.amount = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SlidingWindow):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    @property
    def is_empty(self) -> bool:
        """Nothing in the window could be counted any more."""
        return not self.indices

    def add(self, at_ms: int, count: int = 1, amount: int = 0) -> None:
        """Count ``count`` events summing to ``amount`` at ``at_ms``."""
        index, indices = self._index(at_ms), self.indices
        # Most adds land in a window whose oldest bucket is still inside it: no search needed.
        if indices and indices[0] <= index - BUCKETS:
            self._drop_before(index - BUCKETS + 1)
        if indices and indices[-1] == index:
            self.counts[-1] += count
            self.amounts[-1] += amount
        else:
            indices.append(index)
            self.counts.append(count)
            self.amounts.append(amount)
        self.count += count
        self.amount += amount

    def totals(self, at_ms: int) -> tuple[int, int]:
        """(count, sum) over the window ending at ``at_ms``."""
        stale = bisect_left(self.indices, self._index(at_ms) - BUCKETS + 1)
        if not stale:
            return self.count, self.amount
        return self.count - sum(self.counts[:stale]), self.amount - sum(self.amounts[:stale])

    def prune(self, at_ms: int) -> None:
        """Drop the buckets that no window ending at ``at_ms`` or later can count."""
        self._drop_before(self._index(at_ms) - BUCKETS + 1)

    def _index(self, at_ms: int) -> int:
        index = at_ms // self.bucket_ms
        if self.indices and index < self.indices[-1]:
            raise ValueError(f"time {at_ms} is before the window's newest bucket")
        return index

    def _drop_before(self, oldest: int) -> None:
        stale = bisect_left(self.indices, oldest)
        if stale:
            self.count -= sum(self.counts[:stale])
            self.amount -= sum(self.amounts[:stale])
            del self.indices[:stale], self.counts[:stale], self.amounts[:stale]

    def to_dict(self) -> JsonDict:
        """``{"width_s": 60, "index": [...], "count": [...], "sum": [...]}``, oldest first."""
        return {
            "width_s": self.width_seconds,
            "index": self.indices.copy(),
            "count": self.counts.copy(),
            "sum": self.amounts.copy(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlidingWindow:
        """The window ``to_dict`` described."""
        return cls.from_row([data["width_s"], data["index"], data["count"], data["sum"]])

    def to_row(self) -> list[Any]:
        """``[width_s, indices, counts, sums]`` holding the window's own lists: for a caller that
        serialises it at once (the changelog writes one per update), where copies would be
        wasted."""
        return [self.width_seconds, self.indices, self.counts, self.amounts]

    @classmethod
    def from_row(cls, row: list[Any]) -> SlidingWindow:
        """The window ``to_row`` described."""
        width_seconds, indices, counts, amounts = row
        window = cls(width_seconds)
        window.indices, window.counts, window.amounts = list(indices), list(counts), list(amounts)
        window.count = sum(window.counts)
        window.amount = sum(window.amounts)
        return window


T = TypeVar("T")
U = TypeVar("U")


def regrouped(
    groups: Mapping[str, Mapping[str, T]], convert: Callable[[T], U]
) -> dict[str, dict[str, U]]:
    """Windows grouped twice, as entries keep them (by currency or kind, then window suffix),
    with ``convert`` applied to each: to or from their dicts or rows."""
    return {
        name: {suffix: convert(item) for suffix, item in by_suffix.items()}
        for name, by_suffix in groups.items()
    }


def _velocity_windows() -> dict[str, SlidingWindow]:
    return {suffix: SlidingWindow(seconds) for suffix, seconds in VELOCITY_WINDOWS.items()}


@dataclass(slots=True)
class Observation:
    """One payment as the feature store sees it."""

    at_ms: int
    amount_minor: int
    currency: str
    # The ISO date the payment's daily limit counts against; the caller knows the time zone.
    business_date: str
    # Values of the other dimensions this payment carries, by dimension: {"device": "d9"}.
    partners: Mapping[str, str] = field(default_factory=dict)


@dataclass
class DimensionState:
    """Everything kept about one value of one dimension (the user "u1")."""

    dimension: str
    clock_ms: int = 0
    payments: int = 0
    # Lifetime [count, sum] per currency, for the usual amount.
    usual: dict[str, list[int]] = field(default_factory=dict)
    # business date -> currency -> amount reserved against the daily limit.
    reserved: dict[str, dict[str, int]] = field(default_factory=dict)
    # currency -> window suffix -> window; counts add up across currencies, sums do not.
    windows: dict[str, dict[str, SlidingWindow]] = field(default_factory=dict)
    # partner dimension -> value -> last seen (effective ms), least recently seen first.
    seen: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def new(cls, dimension: str) -> DimensionState:
        """An entry for a value never seen before."""
        if dimension not in PARTNERS:
            raise ValueError(f"unknown dimension {dimension!r}")
        return cls(dimension, seen={partner: {} for partner in PARTNERS[dimension]})

    def observe(self, observation: Observation) -> dict[str, int | bool]:
        """Record a payment; its features as seen by that payment, without the dimension prefix.

        Velocity and distinct counts include the payment itself; history, usual amount and the
        daily amount describe what came before it. Its amount is then reserved on its business
        date until ``release`` takes it back.
        """
        now = max(observation.at_ms, self.clock_ms)
        self.clock_ms = now
        features = self._history_features(observation)
        features.update(self._velocity_features(observation, now))
        for partner, last_seen in self.seen.items():
            _sight(last_seen, observation.partners.get(partner), now)
            features.update(_distinct_counts(_DISTINCT_NAMES[partner], last_seen, now))
        self._remember(observation)
        return features

    def release(self, business_date: str, currency: str, amount_minor: int) -> None:
        """Take back the reservation of a payment that was rejected after it was observed."""
        if amount_minor < 0:
            raise ValueError(f"cannot release a negative amount {amount_minor}")
        day = self.reserved.get(business_date)
        if day is None or currency not in day:
            return
        left = day[currency] - amount_minor
        if left > 0:
            day[currency] = left
        else:
            del day[currency]

    def _history_features(self, observation: Observation) -> dict[str, int | bool]:
        history = self.usual.get(observation.currency)
        usual = history[1] // history[0] if history else 0
        day = self.reserved.get(observation.business_date)
        return {
            "first_seen": self.payments == 0,
            "history_payments": self.payments,
            "usual_amount": usual,
            "amount_vs_usual_pct": observation.amount_minor * 100 // usual if usual else 0,
            "daily_amount": day.get(observation.currency, 0) if day else 0,
        }

    def _velocity_features(self, observation: Observation, now: int) -> dict[str, int]:
        own = self.windows.get(observation.currency)
        if own is None:
            own = self.windows[observation.currency] = _velocity_windows()
        for window in own.values():
            window.add(now, 1, observation.amount_minor)
        others = self._prune_other_currencies(own, now) if len(self.windows) > 1 else []
        # Every window was just added to or pruned at ``now``: its running totals are exact.
        features: dict[str, int] = {}
        for suffix, payments_name, amount_name in _VELOCITY_NAMES:
            window = own[suffix]
            features[payments_name] = window.count
            features[amount_name] = window.amount
            for windows in others:
                features[payments_name] += windows[suffix].count
        return features

    def _prune_other_currencies(
        self, own: dict[str, SlidingWindow], now: int
    ) -> list[dict[str, SlidingWindow]]:
        """Prune the other currencies' windows; forget those with nothing left to count."""
        others = []
        for currency, windows in list(self.windows.items()):
            if windows is own:
                continue
            for window in windows.values():
                window.prune(now)
            if all(window.is_empty for window in windows.values()):
                del self.windows[currency]
            else:
                others.append(windows)
        return others

    def _remember(self, observation: Observation) -> None:
        self.payments += 1
        history = self.usual.setdefault(observation.currency, [0, 0])
        history[0] += 1
        history[1] += observation.amount_minor
        day = self.reserved.setdefault(observation.business_date, {})
        day[observation.currency] = day.get(observation.currency, 0) + observation.amount_minor
        if len(self.reserved) > DAYS_KEPT:
            for old in sorted(self.reserved)[:-DAYS_KEPT]:
                del self.reserved[old]

    def to_dict(self) -> JsonDict:
        """The entry as plain JSON-able data; see ``from_dict``."""
        return {
            "dimension": self.dimension,
            "clock_ms": self.clock_ms,
            "payments": self.payments,
            "usual": {currency: list(history) for currency, history in self.usual.items()},
            "reserved": {date: dict(amounts) for date, amounts in self.reserved.items()},
            "windows": regrouped(self.windows, SlidingWindow.to_dict),
            # Lists, not an object: their order (least recently seen first) decides evictions.
            "seen": {
                partner: {"values": list(last_seen), "last_seen_ms": list(last_seen.values())}
                for partner, last_seen in self.seen.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DimensionState:
        """The entry ``to_dict`` described."""
        return cls(
            dimension=data["dimension"],
            clock_ms=data["clock_ms"],
            payments=data["payments"],
            usual={currency: list(history) for currency, history in data["usual"].items()},
            reserved={date: dict(amounts) for date, amounts in data["reserved"].items()},
            windows=regrouped(data["windows"], SlidingWindow.from_dict),
            seen={
                partner: dict(zip(seen["values"], seen["last_seen_ms"], strict=True))
                for partner, seen in data["seen"].items()
            },
        )

    def to_row(self) -> list[Any]:
        """The entry as one JSON-able row holding its own containers (see ``SlidingWindow.to_row``):
        ``[dimension, clock_ms, payments, usual, reserved, windows, seen]``."""
        windows = regrouped(self.windows, SlidingWindow.to_row)
        # ``seen`` goes as objects: the JSON library keeps their order (least recently seen
        # first), both ways.
        return [
            self.dimension,
            self.clock_ms,
            self.payments,
            self.usual,
            self.reserved,
            windows,
            self.seen,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> DimensionState:
        """The entry ``to_row`` described (its containers freshly read, so kept as they are)."""
        dimension, clock_ms, payments, usual, reserved, windows, seen = row
        return cls(
            dimension,
            clock_ms,
            payments,
            usual,
            reserved,
            regrouped(windows, SlidingWindow.from_row),
            seen,
        )

    @classmethod
    def from_stored(cls, stored: list[Any] | Mapping[str, Any]) -> DimensionState:
        """The entry from its row, or from its dict (a changelog written before rows)."""
        if isinstance(stored, list):
            return cls.from_row(stored)
        return cls.from_dict(stored)


def _sight(last_seen: dict[str, int], value: str | None, now: int) -> None:
    """Note ``value`` as seen at ``now``, then forget what no window or the cap keeps."""
    if value is not None:
        # Re-inserting moves the value to the end: the map stays ordered by last sighting.
        last_seen.pop(value, None)
        last_seen[value] = now
    forgotten: list[str] = []
    for old, at in last_seen.items():
        if len(last_seen) - len(forgotten) <= DISTINCT_CAP and now - at < _DISTINCT_HORIZON_MS:
            break
        forgotten.append(old)
    for old in forgotten:
        del last_seen[old]


def _distinct_counts(
    names: tuple[tuple[str, int], ...], last_seen: dict[str, int], now: int
) -> dict[str, int]:
    """Values last seen within each window: ``now - last_seen < width``."""
    times = list(last_seen.values())
    return {name: len(times) - bisect_left(times, now - width_ms + 1) for name, width_ms in names}
