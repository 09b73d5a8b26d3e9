"""The routing decision: which channel takes a payment, in what order the others follow, and why.

``route_payment`` is a pure function of the request, the policy, the channels' health, their
quotas and the time passed in: the same inputs give the same decision, so a replay routes every
payment as it was routed live. Random-looking choices (exploration, volume splits) are drawn
from a hash of the payment id. The steps are described in docs/routing-policy.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from hashlib import blake2b
from operator import attrgetter
from typing import Any, NamedTuple

from events.records import PaymentAccepted, PaymentMethod
from streams.routing.health import ChannelStatus, HealthBoard
from streams.routing.policy import BASIS_POINTS, ChannelPolicy, RoutingPolicy, RoutingRule
from streams.routing.quotas import NO_QUOTA, DailyQuota, QuotaBook


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


_candidate = Candidate._make
_by_fee = attrgetter("fee_minor")


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
        order = {name: rank for rank, name in enumerate(self.ranked)}
        return {
            "payment_id": self.request.payment_id,
            "channel": self.channel,
            "reason": self.reason.value,
            "explanation": self.explanation,
            "probe": self.probe,
            "rule": self.rule,
            "fallbacks": list(self.fallbacks),
            "policy_version": self.policy_version,
            "candidates": [self._candidate_dict(c, order.get(c.channel)) for c in self.candidates],
        }

    @property
    def ranked(self) -> tuple[str, ...]:
        """The winner and then the fallbacks: every channel the dispatcher may try, in order."""
        return self.fallbacks if self.channel is None else (self.channel, *self.fallbacks)

    def in_band(self, candidate: Candidate) -> bool | None:
        """Whether the candidate's success rate is within the band of the best (None when
        success rates did not rank it)."""
        if self.best_success is None or candidate.eliminated or candidate.probe_due:
            return None
        return candidate.success_rate >= _band_floor(self.best_success, self.band_bp)

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


def _band_floor(best: float, band_bp: int) -> float:
    # A hair below the exact floor, so a rate exactly band_bp below the best is inside.
    return best - band_bp / BASIS_POINTS - 1e-12


# --- the policy compiled for routing -------------------------------------------------------


class Offer(NamedTuple):
    """A channel's terms for one (method, currency): what routing reads per payment."""

    channel: str
    enabled: bool
    bps: int
    fixed_minor: int
    channel_quota: DailyQuota
    merchant_quota: DailyQuota  # every merchant's, unless the merchant has its own


class CompiledRule(NamedTuple):
    """A rule with those of its channels that serve one (method, currency), in its order."""

    rule: RoutingRule
    offers: tuple[Offer, ...]
    weights: Mapping[str, int] | None


@dataclass(frozen=True, slots=True)
class _Tables:
    """A policy as routing reads it: per (method, currency), the offers in priority order and
    the rules that can match."""

    policy: RoutingPolicy
    offers: Mapping[tuple[PaymentMethod, str], tuple[Offer, ...]]
    rules: Mapping[tuple[PaymentMethod, str], tuple[CompiledRule, ...]]
    static_rank: Mapping[str, int]


def _offer(channel: ChannelPolicy, method: PaymentMethod, currency: str) -> Offer:
    fee = channel.fees[method]
    quotas = (channel.daily_quota, channel.merchant_daily_quota)
    return Offer(channel.name, channel.enabled, fee.bps, fee.fixed[currency], *quotas)


def _compiled_rule(rule: RoutingRule, offers: tuple[Offer, ...]) -> CompiledRule:
    by_name = {offer.channel: offer for offer in offers}
    kept = tuple(by_name[name] for name in rule.channels if name in by_name)
    weights = None if rule.weights is None else dict(zip(rule.channels, rule.weights, strict=True))
    return CompiledRule(rule, kept, weights)


def _compile(policy: RoutingPolicy) -> _Tables:
    channels = policy.channels
    keys = {(m, c) for ch in channels.values() for m in ch.methods for c in ch.currencies}
    offers = {
        key: tuple(_offer(channels[n], *key) for n in policy.priority if channels[n].serves(*key))
        for key in keys
    }
    rules = {
        key: tuple(
            _compiled_rule(rule, offers[key])
            for rule in policy.rules
            if (rule.methods is None or key[0] in rule.methods)
            and (rule.currencies is None or key[1] in rule.currencies)
        )
        for key in keys
    }
    static_rank = {name: rank for rank, name in enumerate(policy.static_priority)}
    return _Tables(policy, offers, rules, static_rank)


_COMPILED: dict[int, _Tables] = {}


def _tables(policy: RoutingPolicy) -> _Tables:
    """The policy's tables, compiled on its first decision."""
    tables = _COMPILED.get(id(policy))
    if tables is None or tables.policy is not policy:
        if len(_COMPILED) > 16:
            _COMPILED.clear()  # old versions: a long-running worker loads a few a day at most
        tables = _COMPILED[id(policy)] = _compile(policy)
    return tables


# --- assessing the candidates --------------------------------------------------------------

_NO_OVERRIDES: Mapping[str, DailyQuota] = {}
_IN_SERVICE, _PROBE_DUE = ChannelStatus.IN_SERVICE, ChannelStatus.PROBE_DUE
_OUT_OF_SERVICE = {
    ChannelStatus.OUT: Elimination.CIRCUIT_OPEN,
    ChannelStatus.PROBE_IN_FLIGHT: Elimination.PROBE_IN_FLIGHT,
}


def _assess(
    offers: tuple[Offer, ...],
    request: RoutingRequest,
    tables: _Tables,
    health: HealthBoard,
    quotas: QuotaBook,
    at_ms: int,
) -> list[Candidate]:
    """Every offer as a candidate: its fee, its estimates and its elimination, if any."""
    merchant = tables.policy.merchants.get(request.merchant_id)
    allowed = None if merchant is None else merchant.channels
    overrides = _NO_OVERRIDES if merchant is None else merchant.daily_quotas
    date, merchant_id = request.business_date, request.merchant_id
    currency, amount = request.currency, request.amount_minor
    candidates = []
    for offer in offers:
        name, enabled, bps, fixed, channel_quota, merchant_quota = offer
        success, latency, status = health.assess(name, at_ms)
        fee = (amount * bps + BASIS_POINTS // 2) // BASIS_POINTS + fixed
        merchant_quota = overrides.get(name, merchant_quota)
        if enabled and status is _IN_SERVICE and (allowed is None or name in allowed):
            unlimited = channel_quota is NO_QUOTA and merchant_quota is NO_QUOTA
            if unlimited or not quotas.would_exceed(
                date, name, merchant_id, currency, amount, channel_quota, merchant_quota
            ):
                # _make: a third of the time of the keyword-aware constructor, per candidate.
                candidates.append(_candidate((name, fee, success, latency, None, "", False)))
                continue
        why = _elimination(offer, merchant_quota, allowed, status, request, health, quotas)
        candidates.append(Candidate(name, fee, success, latency, *why, status is _PROBE_DUE))
    return candidates


def _elimination(
    offer: Offer,
    merchant_quota: DailyQuota,
    allowed: frozenset[str] | None,
    status: ChannelStatus,
    request: RoutingRequest,
    health: HealthBoard,
    quotas: QuotaBook,
) -> tuple[Elimination | None, str]:
    """The first reason the channel may not take the payment, with its detail."""
    name = offer.channel
    if not offer.enabled:
        return Elimination.DISABLED, "disabled in the policy"
    if allowed is not None and name not in allowed:
        return Elimination.MERCHANT_NOT_ENABLED, f"not enabled for merchant {request.merchant_id}"
    if status in _OUT_OF_SERVICE:
        return _OUT_OF_SERVICE[status], health.channels[name].outage()
    breach = quotas.would_exceed(
        request.business_date,
        name,
        request.merchant_id,
        request.currency,
        request.amount_minor,
        offer.channel_quota,
        merchant_quota,
    )
    return (None, "") if breach is None else (Elimination(breach.scope), breach.describe())


# --- choosing ------------------------------------------------------------------------------


def payment_draw(payment_id: str) -> int:
    """64 bits drawn from the payment id: the same payment always draws the same number."""
    return int.from_bytes(blake2b(payment_id.encode(), digest_size=8).digest(), "big")


def route_payment(
    request: RoutingRequest,
    policy: RoutingPolicy,
    health: HealthBoard,
    quotas: QuotaBook,
    at_ms: int,
) -> RoutingDecision:
    """Route one payment: a requested channel, else the candidates that serve it (narrowed by
    the first matching rule) less those eliminated, then a probe, the kill switch's static
    order, the rule's volume split or success-rate routing picks the winner."""
    tables = _tables(policy)
    if request.requested_channel is not None:
        return _route_requested(request, tables, health, quotas, at_ms)
    rule = _first_rule(request, tables)
    offers = tables.offers.get((request.method, request.currency), ()) if rule is None else rule[1]
    candidates = _assess(offers, request, tables, health, quotas, at_ms)
    if policy.kill_switch:
        candidates = _static_only(candidates, tables.static_rank)
    usable = [c for c in candidates if c.eliminated is None]
    healthy = [c for c in usable if not c.probe_due]
    if policy.kill_switch:
        ranking: Ranking = (RoutingReason.KILL_SWITCH, healthy, None, None)
    elif rule is not None and rule.weights is not None and healthy:
        ranking = _split_ranking(request, rule.weights, healthy)
    else:
        ranking = _success_ranking(request, policy, healthy)
    probe = next(c for c in usable if c.probe_due) if len(usable) > len(healthy) else None
    return _decision(request, policy, rule, candidates, probe, ranking)


def _first_rule(request: RoutingRequest, tables: _Tables) -> CompiledRule | None:
    """The first rule that matches the payment, with its channels that serve it."""
    method, currency = request.method, request.currency
    for compiled in tables.rules.get((method, currency), ()):
        rule = compiled.rule
        if rule.matches(
            method, currency, request.amount_minor, request.merchant_id, request.region
        ):
            return compiled
    return None


# How a mode ranked the channels left: its reason, the order, and what explains it (the best
# success rate when success rates ranked them, the weights when a split picked the winner).
Ranking = tuple[RoutingReason, list[Candidate], float | None, Mapping[str, int] | None]


def _decision(
    request: RoutingRequest,
    policy: RoutingPolicy,
    rule: CompiledRule | None,
    candidates: list[Candidate],
    probe: Candidate | None,
    ranking: Ranking,
) -> RoutingDecision:
    """The decision for the ranking; a candidate due a probe goes first and is the winner."""
    reason, order, best, weights = ranking
    if probe is not None:
        reason, order = RoutingReason.PROBE, [probe, *order]
    elif not order:
        reason = RoutingReason.NO_CHANNEL
    return RoutingDecision(
        request,
        order[0].channel if order else None,
        reason,
        tuple([c.channel for c in order[1:]]),
        tuple(candidates),
        policy.version,
        None if rule is None else rule.rule.name,
        probe is not None,
        best,
        policy.success_rate.band_bp,
        weights,
    )


def _route_requested(
    request: RoutingRequest, tables: _Tables, health: HealthBoard, quotas: QuotaBook, at_ms: int
) -> RoutingDecision:
    """The requested channel wins when it may take the payment; never another in its place."""
    name = str(request.requested_channel)
    channel = tables.policy.channels.get(name)
    if channel is None:
        why = f"no channel {name!r} in policy version {tables.policy.version}"
        candidate = Candidate(name, 0, 0.0, 0.0, Elimination.UNKNOWN_CHANNEL, why)
    elif not channel.serves(request.method, request.currency):
        why = f"does not take {request.method.value} in {request.currency}"
        candidate = Candidate(name, 0, 0.0, 0.0, Elimination.UNSUPPORTED, why)
    else:
        offer = _offer(channel, request.method, request.currency)
        (candidate,) = _assess((offer,), request, tables, health, quotas, at_ms)
    usable = candidate.eliminated is None
    return RoutingDecision(
        request=request,
        channel=name if usable else None,
        reason=RoutingReason.REQUESTED if usable else RoutingReason.REQUESTED_CHANNEL_UNAVAILABLE,
        fallbacks=(),
        candidates=(candidate,),
        policy_version=tables.policy.version,
        probe=usable and candidate.probe_due,
    )


def _static_only(candidates: list[Candidate], rank: Mapping[str, int]) -> list[Candidate]:
    """Kill switch on: the candidates in static order, those the list leaves out eliminated."""
    why = "not in the static priority list"
    candidates = [
        c
        if c.channel in rank or c.eliminated
        else c._replace(eliminated=Elimination.NOT_IN_STATIC_ORDER, detail=why, probe_due=False)
        for c in candidates
    ]
    return sorted(candidates, key=lambda c: rank.get(c.channel, len(rank)))


def _split_ranking(
    request: RoutingRequest, weights: Mapping[str, int], healthy: list[Candidate]
) -> Ranking:
    """The rule's weights among the channels left pick the winner; the rest follow in the
    rule's order."""
    total = sum([weights.get(c.channel, 0) for c in healthy])
    point, winner = (payment_draw(request.payment_id) >> 16) % max(total, 1), healthy[0]
    for candidate in healthy:
        point -= weights.get(candidate.channel, 0)
        if point < 0:
            winner = candidate
            break
    order = [winner, *[c for c in healthy if c is not winner]]
    return RoutingReason.VOLUME_SPLIT, order, None, weights


def _success_ranking(
    request: RoutingRequest, policy: RoutingPolicy, healthy: list[Candidate]
) -> Ranking:
    """The cheapest channel within the band of the best success rate first, then the others in
    the band by fee and those outside by success rate; a share of payments explores instead:
    a channel picked at random goes first."""
    if len(healthy) < 2:
        best = healthy[0].success_rate if healthy else None
        return RoutingReason.SUCCESS_RATE, healthy, best, None
    best = max([c.success_rate for c in healthy])
    floor = _band_floor(best, policy.success_rate.band_bp)
    order = sorted([c for c in healthy if c.success_rate >= floor], key=_by_fee)
    order += sorted([c for c in healthy if c.success_rate < floor], key=_by_success)
    draw = payment_draw(request.payment_id)
    if draw % BASIS_POINTS >= policy.success_rate.exploration_bp:
        return RoutingReason.SUCCESS_RATE, order, best, None
    explored = healthy[(draw >> 32) % len(healthy)]
    order = [explored, *[c for c in order if c is not explored]]
    return RoutingReason.EXPLORATION, order, best, None


def _by_success(candidate: Candidate) -> float:
    return -candidate.success_rate


def apply_decision(
    decision: RoutingDecision, health: HealthBoard, quotas: QuotaBook, at_ms: int
) -> None:
    """Count the routed payment into its winner's quotas, and remember a probe as sent. A
    payment a dispatcher retries on a fallback is counted there with ``QuotaBook.record``."""
    if decision.channel is None:
        return
    request = decision.request
    quotas.record(
        request.business_date,
        decision.channel,
        request.merchant_id,
        request.currency,
        request.amount_minor,
    )
    if decision.probe:
        health.probe_sent(decision.channel, at_ms)


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
