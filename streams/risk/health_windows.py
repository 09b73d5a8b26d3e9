"""A merchant's health counters for the after-stage: payments, approvals, declines, refunds and
chargebacks over sliding windows, and the ratios its alerts compare.

Kept per merchant in the health store; the windows are the feature store's ``SlidingWindow``
and follow the same entry clock rule (time never goes backwards inside one entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.risk.features import HEALTH_WINDOWS
from streams.risk.velocity import SlidingWindow, regrouped

HEALTH_KINDS = ("payments", "approved", "declines", "refunds", "chargebacks")
JsonDict = dict[str, Any]


def _health_windows() -> dict[str, dict[str, SlidingWindow]]:
    return {
        kind: {suffix: SlidingWindow(seconds) for suffix, seconds in HEALTH_WINDOWS.items()}
        for kind in HEALTH_KINDS
    }


# name, numerator, scale, denominator: the derived health features, 0 when nothing to divide by.
_HEALTH_RATIOS = (
    ("decline_ratio_bp_1h", "declines_1h", 10_000, "payments_1h"),
    # The last hour against the hourly average of the last day: 100 is an ordinary hour.
    ("decline_spike_pct", "declines_1h", 100 * 24, "declines_1d"),
    ("refund_ratio_bp_30d", "refunds_30d", 10_000, "approved_30d"),
    ("chargeback_ratio_bp_30d", "chargebacks_30d", 10_000, "approved_30d"),
    ("volume_change_pct", "payments_1h", 100 * 24, "payments_1d"),
)


@dataclass
class HealthWindows:
    """A merchant's recent payments, approvals, declines, refunds and chargebacks, counted.

    ``record`` follows the entry clock rule; ``features`` reads at the later of its time and
    the clock without moving the clock, so reading never changes what is counted.
    """

    clock_ms: int = 0
    windows: dict[str, dict[str, SlidingWindow]] = field(default_factory=_health_windows)

    @classmethod
    def new(cls) -> HealthWindows:
        """Windows for a merchant with nothing recorded yet."""
        return cls()

    def record(self, kind: str, at_ms: int) -> None:
        """Count one event of ``kind`` (one of ``HEALTH_KINDS``) at ``at_ms``."""
        if kind not in self.windows:
            raise ValueError(f"unknown health event kind {kind!r}")
        now = max(at_ms, self.clock_ms)
        self.clock_ms = now
        # Only this kind's windows change. The others keep their stale buckets until their
        # next add drops them: ``features`` reads past stale buckets, and an entry stays small.
        for window in self.windows[kind].values():
            window.add(now)

    def features(self, at_ms: int) -> dict[str, int]:
        """``<kind>_<window>`` counts and the ratios the after-stage alerts compare."""
        now = max(at_ms, self.clock_ms)
        counts = {
            f"{kind}_{suffix}": window.totals(now)[0]
            for kind, windows in self.windows.items()
            for suffix, window in windows.items()
        }
        for name, numerator, scale, denominator in _HEALTH_RATIOS:
            below = counts[denominator]
            counts[name] = counts[numerator] * scale // below if below else 0
        return counts

    def to_dict(self) -> JsonDict:
        """``{"clock_ms": ..., "windows": {kind: {suffix: window}}}``, windows as ``to_dict``."""
        return {
            "clock_ms": self.clock_ms,
            "windows": regrouped(self.windows, SlidingWindow.to_dict),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthWindows:
        """The windows ``to_dict`` described."""
        return cls(data["clock_ms"], regrouped(data["windows"], SlidingWindow.from_dict))

    def to_row(self) -> list[Any]:
        """``[clock_ms, {kind: {suffix: window row}}]``, holding the windows' own lists (see
        ``SlidingWindow.to_row``)."""
        return [self.clock_ms, regrouped(self.windows, SlidingWindow.to_row)]

    @classmethod
    def from_row(cls, row: list[Any]) -> HealthWindows:
        """The windows ``to_row`` described."""
        clock_ms, windows = row
        return cls(clock_ms, regrouped(windows, SlidingWindow.from_row))

    @classmethod
    def from_stored(cls, stored: list[Any] | Mapping[str, Any]) -> HealthWindows:
        """The windows from their row, or from their dict (a changelog written before rows)."""
        if isinstance(stored, list):
            return cls.from_row(stored)
        return cls.from_dict(stored)
