"""A routing decision as it is recorded and explained: the request it answers, every candidate
as assessed, why the winner won, and the plain data and one line a decision is shown as.

``streams.routing.decision`` makes the decisions; the types are here so that explaining a
decision needs nothing of how it was made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from events.records import PaymentAccepted, PaymentMethod
from streams.routing.policy import BASIS_POINTS


class RoutingReason(StrEnum):
    """Why the winner won, or why there is none."""

    REQUESTED = "REQUESTED"
    REQUESTED_CHANNEL_UNAVAILABLE = "REQUESTED_CHANNEL_UNAVAILABLE"
    PROBE = "PROBE"
    KILL_SWITCH = "KILL_SWITCH"
    VOLUME_SPLIT = "VOLUME_SPLIT"
    EXPLORATION = "EXPLORATION"
    SUCCESS_RATE = "SUCCESS_RATE"
    NO_CHANNEL = "NO_CHANNEL"


class Elimination(StrEnum):
    """Why a candidate channel may not take the payment."""

    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    UNSUPPORTED = "UNSUPPORTED"
    DISABLED = "DISABLED"
    MERCHANT_NOT_ENABLED = "MERCHANT_NOT_ENABLED"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    PROBE_IN_FLIGHT = "PROBE_IN_FLIGHT"
    CHANNEL_COUNT_QUOTA = "CHANNEL_COUNT_QUOTA"
    CHANNEL_AMOUNT_QUOTA = "CHANNEL_AMOUNT_QUOTA"
    MERCHANT_COUNT_QUOTA = "MERCHANT_COUNT_QUOTA"
    MERCHANT_AMOUNT_QUOTA = "MERCHANT_AMOUNT_QUOTA"
    NOT_IN_STATIC_ORDER = "NOT_IN_STATIC_ORDER"


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """What routing needs to know of a risk-approved payment."""

    payment_id: str
    merchant_id: str
    method: PaymentMethod
    currency: str
    amount_minor: int
    business_date: str
    region: str | None = None
    requested_channel: str | None = None

    @classmethod
    def from_accepted(cls, accepted: PaymentAccepted, business_date: str) -> RoutingRequest:
        """The request of an accepted payment, counted against ``business_date``'s quotas."""
        return cls(
            payment_id=accepted.payment_id,
            merchant_id=accepted.merchant_id,
            method=accepted.method,
            currency=accepted.currency,
            amount_minor=accepted.amount_minor,
            business_date=business_date,
            region=accepted.region,
            requested_channel=accepted.requested_channel,
        )


class Candidate(NamedTuple):
    """A channel that could serve the payment, as the decision assessed it: its fee for this
    amount, its estimated success rate and latency, and why it was eliminated, if it was."""

    channel: str
    fee_minor: int
    success_rate: float
    latency_ms: float
    eliminated: Elimination | None = None
    detail: str = ""  # why it was eliminated; empty when it was not
    probe_due: bool = False  # out of service, and this payment may probe it


class RoutingDecision(NamedTuple):
    """The winner (None when the payment cannot be routed), the fallbacks in the order to try
    them, every candidate as assessed, and what is needed to explain the choice.

    ``best_success`` is set when success rates ranked the channels, and ``weights`` when a
    rule's volume split picked the winner. A named tuple rather than a frozen dataclass: it is
    as immutable and five times quicker to build, once per payment."""

    request: RoutingRequest
    channel: str | None
    reason: RoutingReason
    fallbacks: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    policy_version: int
    rule: str | None = None
    probe: bool = False
    best_success: float | None = None
    band_bp: int = 0
    weights: Mapping[str, int] | None = None

    @property
    def explanation(self) -> str:
        """One line for people: why this channel, or why none."""
        template = _EXPLAIN[self.reason]
        if self.reason is RoutingReason.SUCCESS_RATE and not self.fallbacks:
            template = "{channel} is the only channel available"
        text = template.format_map(_ExplanationValues(self))
        named = self.rule is None or self.reason is RoutingReason.VOLUME_SPLIT
        return text if named else f"{text} (rule {self.rule})"

    def to_dict(self) -> dict[str, Any]:
        """The decision as plain JSON-able data, every candidate with its reason."""
        return {
            "payment_id": self.request.payment_id,
            "channel": self.channel,
            "reason": self.reason.value,
            "explanation": self.explanation,
            "probe": self.probe,
            "rule": self.rule,
            "fallbacks": list(self.fallbacks),
            "policy_version": self.policy_version,
            "candidates": self.candidate_rows(),
        }

    def candidate_rows(self) -> list[dict[str, Any]]:
        """Every candidate as plain data: its fee, success rate, latency, rank and reason."""
        order = {name: rank for rank, name in enumerate(self.ranked)}
        return [self._candidate_dict(c, order.get(c.channel)) for c in self.candidates]

    @property
    def ranked(self) -> tuple[str, ...]:
        """The winner and then the fallbacks: every channel the dispatcher may try, in order."""
        return self.fallbacks if self.channel is None else (self.channel, *self.fallbacks)

    def in_band(self, candidate: Candidate) -> bool | None:
        """Whether the candidate's success rate is within the band of the best (None when
        success rates did not rank it)."""
        if self.best_success is None or candidate.eliminated or candidate.probe_due:
            return None
        return candidate.success_rate >= band_floor(self.best_success, self.band_bp)

    def _candidate_dict(self, candidate: Candidate, rank: int | None) -> dict[str, Any]:
        best = self.best_success
        gap = None if best is None else round((candidate.success_rate - best) * BASIS_POINTS)
        return {
            "channel": candidate.channel,
            "fee_minor": candidate.fee_minor,
            "success_bp": round(candidate.success_rate * BASIS_POINTS),
            "latency_ms": round(candidate.latency_ms),
            "gap_bp": gap,
            "in_band": self.in_band(candidate),
            "rank": rank,
            "eliminated": candidate.eliminated and candidate.eliminated.value,
            "reason": _candidate_reason(self, candidate, rank),
        }


def band_floor(best: float, band_bp: int) -> float:
    """The lowest success rate within ``band_bp`` of the best: the band success rates rank."""
    # A hair below the exact floor, so a rate exactly band_bp below the best is inside.
    return best - band_bp / BASIS_POINTS - 1e-12


# --- explaining ----------------------------------------------------------------------------

_EXPLAIN = {
    RoutingReason.REQUESTED: "requested channel {channel}{as_probe}",
    RoutingReason.REQUESTED_CHANNEL_UNAVAILABLE: "requested channel {requested} unavailable: "
    "{refusal}",
    RoutingReason.PROBE: "probe: {channel} is out of service and its probe interval has passed",
    RoutingReason.KILL_SWITCH: "kill switch on: {channel} is the first available channel of the "
    "static order",
    RoutingReason.VOLUME_SPLIT: "rule {rule} splits volume {shares}: this payment falls to "
    "{channel}",
    RoutingReason.EXPLORATION: "exploration: {channel} picked at random among {healthy} channels",
    RoutingReason.SUCCESS_RATE: "cheapest within {band_bp} bp of best success rate ({best})"
    "{outside}",
    RoutingReason.NO_CHANNEL: "no channel left: {eliminated}",
}


def _outside(decision: RoutingDecision) -> str:
    outside = [c.channel for c in decision.candidates if decision.in_band(c) is False]
    return f"; outside the band: {', '.join(outside)}" if outside else ""


def _eliminated(decision: RoutingDecision) -> str:
    text = "; ".join(f"{c.channel} {c.detail}" for c in decision.candidates)
    request = decision.request
    return text or f"none takes {request.method.value} in {request.currency}"


# The values the explanations name, each worked out only when a template asks for it.
_VALUES: dict[str, Callable[[RoutingDecision], object]] = {
    "channel": lambda d: d.channel,
    "as_probe": lambda d: ", as the probe of a channel out of service" if d.probe else "",
    "requested": lambda d: d.request.requested_channel,
    "refusal": lambda d: d.candidates[0].detail,
    "rule": lambda d: d.rule,
    "shares": lambda d: " / ".join(f"{n} {w}" for n, w in (d.weights or {}).items()),
    "healthy": lambda d: sum(1 for c in d.candidates if not c.eliminated and not c.probe_due),
    "band_bp": lambda d: d.band_bp,
    "best": lambda d: f"{(d.best_success or 0.0) * 100:.2f}%",
    "outside": _outside,
    "eliminated": _eliminated,
}


class _ExplanationValues(dict[str, object]):
    """What ``str.format_map`` reads a template's names from, computing each on first use."""

    def __init__(self, decision: RoutingDecision) -> None:
        super().__init__()
        self.decision = decision

    def __missing__(self, key: str) -> object:
        return _VALUES[key](self.decision)


def _candidate_reason(decision: RoutingDecision, candidate: Candidate, rank: int | None) -> str:
    """Why the candidate is where it is in the decision."""
    if candidate.eliminated is not None:
        return candidate.detail
    if rank is None:
        return "out of service with a probe due; another channel is probed first"
    place = f"fallback {rank}" if rank else "chosen"
    if candidate.probe_due:
        return f"{place}: probe of a channel out of service"
    if rank == 0 and decision.reason is RoutingReason.EXPLORATION:
        place = "chosen by exploration"
    if decision.weights is not None:
        return f"{place}: weight {decision.weights.get(candidate.channel, 0)} of the split"
    if decision.best_success is None:
        return place
    side = "within" if decision.in_band(candidate) else "outside"
    return f"{place}: {side} the {decision.band_bp} bp band, fee {candidate.fee_minor}"
