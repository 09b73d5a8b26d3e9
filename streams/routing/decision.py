"""The routing decision: which channel takes a payment, in what order the others follow, and why.

``route_payment`` is a pure function of the request, the policy, the channels' health, their
quotas and the time passed in: the same inputs give the same decision, so a replay routes every
payment as it was routed live. Random-looking choices (exploration, volume splits) are drawn
from a hash of the payment id. The steps are described in docs/routing-policy.md; the decision's
types and its explanation are in ``streams.routing.explanation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b
from operator import attrgetter
from typing import NamedTuple

from events.records import PaymentMethod
from streams.routing.explanation import (
    Candidate,
    Elimination,
    RoutingDecision,
    RoutingReason,
    RoutingRequest,
    band_floor,
)
from streams.routing.health import ChannelStatus, HealthBoard
from streams.routing.policy import BASIS_POINTS, ChannelPolicy, RoutingPolicy, RoutingRule
from streams.routing.quotas import NO_QUOTA, DailyQuota, QuotaBook

# Callers import the decision's types from here, where they were first defined; listing them
# re-exports them under strict mypy.
__all__ = [
    "Candidate",
    "CompiledRule",
    "Elimination",
    "Offer",
    "Ranking",
    "RoutingDecision",
    "RoutingReason",
    "RoutingRequest",
    "apply_decision",
    "payment_draw",
    "route_payment",
]

_candidate = Candidate._make
_by_fee = attrgetter("fee_minor")


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
    floor = band_floor(best, policy.success_rate.band_bp)
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
