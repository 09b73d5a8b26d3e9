"""Live service metrics per channel: success rate, latency, and whether it is in service.

Metrics decay exponentially with the policy's half-life, measured in event time (epoch
milliseconds passed in, never the wall clock), so replaying the same results rebuilds the same
state. A Beta prior keeps a channel with little traffic away from 0% and 100%. A run of failures
(timeouts included) takes a channel out of service; once the probe interval has passed one
payment at a time may probe it, and probe successes bring it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How live metrics are kept: decay, the prior a new channel starts from, and when a channel
    is taken out of service and probed back in."""

    half_life_seconds: int = 600
    prior_success_bp: int = 9_000
    prior_weight: int = 10
    prior_latency_ms: int = 1_000
    failures_in_a_row: int = 5
    probe_interval_seconds: int = 30
    probe_successes: int = 1


class ChannelStatus(StrEnum):
    """Whether a channel may take payments now."""

    IN_SERVICE = "IN_SERVICE"
    OUT = "OUT"  # taken out, and its probe interval has not passed
    PROBE_IN_FLIGHT = "PROBE_IN_FLIGHT"  # out, and a probe sent is awaiting its result
    PROBE_DUE = "PROBE_DUE"  # out, and the next payment may probe it


def iso_time(at_ms: int) -> str:
    """Epoch milliseconds as UTC ISO 8601 text, for explanations."""
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ChannelHealth:
    """One channel's decayed counts as of ``updated_ms``, its current run of failures, and its
    elimination: when it went out, when a probe is next due, and a probe in flight."""

    channel: str
    updated_ms: int = 0
    successes: float = 0.0
    failures: float = 0.0
    latency_total: float = 0.0  # decayed sum of latencies, weighted like the counts
    run: int = 0  # failures in a row, timeouts included
    run_timeouts: int = 0
    run_since_ms: int | None = None
    out_since_ms: int | None = None
    probe_due_ms: int | None = None
    probe_sent_ms: int | None = None
    probe_successes: int = 0

    def status(self, at_ms: int, probe_interval_ms: int) -> ChannelStatus:
        """The channel's status at ``at_ms``. A probe that has not been answered within the
        probe interval is taken as lost, so another may go."""
        if self.out_since_ms is None:
            return ChannelStatus.IN_SERVICE
        if self.probe_due_ms is not None and at_ms < self.probe_due_ms:
            return ChannelStatus.OUT
        if self.probe_sent_ms is not None and at_ms < self.probe_sent_ms + probe_interval_ms:
            return ChannelStatus.PROBE_IN_FLIGHT
        return ChannelStatus.PROBE_DUE

    def outage(self) -> str:
        """Why the channel is out, e.g. 'eliminated: 5 failures in a row since ...'."""
        timeouts = f" ({self.run_timeouts} timeouts)" if self.run_timeouts else ""
        since = iso_time(self.run_since_ms or 0)
        text = f"eliminated: {self.run} failures in a row{timeouts} since {since}"
        if self.probe_sent_ms is not None:
            return f"{text}; a probe sent at {iso_time(self.probe_sent_ms)} awaits its result"
        return f"{text}; next probe at {iso_time(self.probe_due_ms or 0)}"

    def to_row(self) -> list[Any]:
        """The state as a JSON array, every field in declaration order."""
        return [getattr(self, name) for name in _FIELDS]

    @classmethod
    def from_row(cls, row: list[Any]) -> ChannelHealth:
        """The state ``to_row`` described; the decayed counts are floats even when a JSON
        writer dropped the fraction of a whole one."""
        health = cls(*row)
        health.successes, health.failures = float(health.successes), float(health.failures)
        health.latency_total = float(health.latency_total)
        return health


_FIELDS = tuple(f.name for f in fields(ChannelHealth))


class HealthBoard:
    """Every channel's health, and the settings that observing and reading them follow."""

    def __init__(self, settings: HealthSettings, channels: Iterable[ChannelHealth] = ()) -> None:
        self.channels = {health.channel: health for health in channels}
        self._changed: set[str] = set()
        self.configure(settings)

    def configure(self, settings: HealthSettings) -> None:
        """Follow ``settings`` from now on (a new policy version); the state is kept."""
        self.settings = settings
        self._inverse_half_life = 1.0 / (settings.half_life_seconds * 1000)
        self._prior_weight = float(settings.prior_weight)
        self._prior_successes = settings.prior_weight * settings.prior_success_bp / 10_000
        self._prior_latency = float(settings.prior_weight * settings.prior_latency_ms)
        self._probe_interval_ms = settings.probe_interval_seconds * 1000
        self._prior_estimate = (
            self._prior_successes / self._prior_weight,
            float(settings.prior_latency_ms),
            ChannelStatus.IN_SERVICE,
        )

    def observe(
        self,
        channel: str,
        succeeded: bool,
        latency_ms: int,
        at_ms: int,
        timed_out: bool = False,
        *,
        declined: bool = False,
    ) -> ChannelHealth:
        """Fold in one result of ``channel``: ``timed_out`` counts as a failure. ``declined``
        is a refusal by the payer's side (a declined card): it lowers the success rate, but the
        channel answered, so it ends a run of failures instead of extending it."""
        health = self._health(channel)
        now = max(at_ms, health.updated_ms)
        self._decay(health, now)
        ok = succeeded and not timed_out
        health.successes += 1.0 if ok else 0.0
        health.failures += 0.0 if ok else 1.0
        health.latency_total += latency_ms
        if ok or (declined and not timed_out):
            self._answered(health)
        else:
            self._failed(health, now, timed_out)
        self._changed.add(channel)
        return health

    def probe_sent(self, channel: str, at_ms: int) -> None:
        """Remember that a payment was sent to probe ``channel``: no other until it is answered
        or the probe interval passes."""
        health = self._health(channel)
        health.probe_sent_ms = at_ms
        self._changed.add(channel)

    def assess(self, channel: str, at_ms: int) -> tuple[float, float, ChannelStatus]:
        """The estimated success rate, the estimated latency in ms and the status at ``at_ms``.

        Both estimates blend the decayed observations with the prior; with no observations they
        are the prior's own."""
        health = self.channels.get(channel)
        if health is None:
            return self._prior_estimate
        elapsed = at_ms - health.updated_ms
        decay = 2.0 ** (-elapsed * self._inverse_half_life) if elapsed > 0 else 1.0
        weight = (health.successes + health.failures) * decay + self._prior_weight
        success = (health.successes * decay + self._prior_successes) / weight
        latency = (health.latency_total * decay + self._prior_latency) / weight
        if health.out_since_ms is None:
            return success, latency, ChannelStatus.IN_SERVICE
        return success, latency, health.status(at_ms, self._probe_interval_ms)

    def to_rows(self) -> list[list[Any]]:
        """Every channel's row (see ``ChannelHealth.to_row``)."""
        return [health.to_row() for health in self.channels.values()]

    @classmethod
    def from_rows(cls, settings: HealthSettings, rows: Iterable[list[Any]]) -> HealthBoard:
        """The board ``to_rows`` (or the rows of its store) described."""
        return cls(settings, (ChannelHealth.from_row(row) for row in rows))

    def take_changes(self) -> dict[str, list[Any]]:
        """The rows changed since the last call, keyed by channel name."""
        changed, self._changed = self._changed, set()
        return {channel: self.channels[channel].to_row() for channel in sorted(changed)}

    def _health(self, channel: str) -> ChannelHealth:
        health = self.channels.get(channel)
        if health is None:
            health = self.channels[channel] = ChannelHealth(channel)
        return health

    def _decay(self, health: ChannelHealth, now: int) -> None:
        if now > health.updated_ms:
            decay = 2.0 ** (-(now - health.updated_ms) * self._inverse_half_life)
            health.successes *= decay
            health.failures *= decay
            health.latency_total *= decay
        health.updated_ms = now

    def _answered(self, health: ChannelHealth) -> None:
        if health.out_since_ms is not None:
            # Out of service, any answer is a probe's: the channel is back after enough of them.
            health.probe_sent_ms = None
            health.probe_successes += 1
            if health.probe_successes < self.settings.probe_successes:
                health.probe_due_ms = health.updated_ms
                return
            health.out_since_ms = health.probe_due_ms = None
            health.probe_successes = 0
        health.run, health.run_timeouts, health.run_since_ms = 0, 0, None

    def _failed(self, health: ChannelHealth, now: int, timed_out: bool) -> None:
        if health.run == 0:
            health.run_since_ms = now
        health.run += 1
        health.run_timeouts += 1 if timed_out else 0
        if health.out_since_ms is not None:
            # A failed probe: the interval starts again, and so does the count of successes.
            health.probe_sent_ms = None
            health.probe_successes = 0
            health.probe_due_ms = now + self._probe_interval_ms
        elif health.run >= self.settings.failures_in_a_row:
            health.out_since_ms = now
            health.probe_due_ms = now + self._probe_interval_ms
            health.probe_sent_ms = None
