"""Rule sets: rules, alerts and merchant limits, and the engine that gives verdicts.

Rule files are loaded by ``streams.risk.rule_file``. Evaluation is a pure function of the rule
set, the features and the limits, so a replay or a backtest gives the same verdict as the live
decision did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from events.money import UnknownCurrency, currency_exponent
from streams.risk.expressions import Expression, Features, Value
from streams.risk.features import (
    VELOCITY_WINDOWS,
)

RATINGS = ("A", "B", "C", "D")
AMOUNT_LIMITS = ("single_payment", "user_daily_amount", "merchant_daily_amount")
# Limits on what a merchant (a shop or a creator) withdraws: one payout, and a business day's.
PAYOUT_LIMITS = ("single_payout", "daily_payout")
COUNT_DIMENSIONS = ("user", "device", "ip", "account")
COUNT_LIMITS = tuple(f"{dim}_payments_{w}" for dim in COUNT_DIMENSIONS for w in VELOCITY_WINDOWS)
MAX_DELAY_SECONDS = 24 * 3_600
# Built-in checks are named "limit.*" and "merchant.*": a rule named alike would be confused
# with them in a decision's explanation.
RESERVED_PREFIXES = ("limit", "merchant")

_AMOUNT_KEY = re.compile(rf"({'|'.join(AMOUNT_LIMITS + PAYOUT_LIMITS)})\.([A-Z]{{3}})")

Limits = dict[str, int]


class Outcome(StrEnum):
    """What a fired rule asks for; ``severity`` orders them reject > review > delay > approve."""

    APPROVE = "approve"
    DELAY = "delay"
    REVIEW = "review"
    REJECT = "reject"

    @property
    def severity(self) -> int:
        """Rank of the outcome: the most severe fired outcome is the verdict."""
        return _SEVERITY[self]


_SEVERITY = {outcome: rank for rank, outcome in enumerate(Outcome)}


@dataclass(frozen=True, slots=True)
class Rule:
    """A during-stage rule: when ``condition`` holds for a payment, ask for ``outcome``."""

    name: str
    outcome: Outcome
    delay_seconds: int
    condition: Expression
    line: int


@dataclass(frozen=True, slots=True)
class Alert:
    """An after-stage alert over a merchant's health; ``downgrade`` lowers its rating a step."""

    name: str
    downgrade: bool
    condition: Expression
    line: int


@dataclass(frozen=True, slots=True)
class FiredRule:
    """A rule or limit that fired, with the values of exactly the features it read."""

    rule: str
    outcome: Outcome
    delay_seconds: int
    inputs: dict[str, Value]


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """An alert that fired for a merchant, with the health values it read."""

    alert: str
    downgrade: bool
    inputs: dict[str, Value]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The during-stage decision: the most severe fired outcome and everything that fired."""

    outcome: Outcome
    delay_seconds: int
    fired: tuple[FiredRule, ...]


@dataclass(frozen=True)
class RuleSet:
    """A loaded rule file; ``digest`` (SHA-256 of ``text``) identifies it in decisions."""

    version: int
    rules: tuple[Rule, ...]
    alerts: tuple[Alert, ...]
    limits_by_rating: dict[str, dict[str, int]]
    text: str
    digest: str
    # The engine's loop reads these pairs instead of following rule.condition.predicate.
    _checks: tuple[tuple[Callable[[Features], bool], Rule], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        checks = tuple((rule.condition.predicate, rule) for rule in self.rules)
        object.__setattr__(self, "_checks", checks)

    def limits_for(self, rating: str, overrides: Mapping[str, int]) -> Limits:
        """The rating's default limits with a merchant's own limits on top."""
        limits = dict(self.limits_by_rating.get(rating, {}))
        limits.update(overrides)
        return limits


def is_limit_key(key: str) -> bool:
    """True for a flat limit key: ``single_payment.CNY``, ``device_payments_1m`` and so on."""
    if key in COUNT_LIMITS:
        return True
    match = _AMOUNT_KEY.fullmatch(key)
    if match is None:
        return False
    try:
        currency_exponent(match.group(2))
    except UnknownCurrency:
        return False
    return True


_DAILY_CHECKS = tuple(
    (name, f"limit.{name}", f"{name.split('_')[0]}.daily_amount") for name in AMOUNT_LIMITS[1:]
)
_COUNT_CHECKS = tuple(
    (f"{dim}_payments_{w}", f"limit.{dim}_payments_{w}", f"{dim}.present", f"{dim}.payments_{w}")
    for dim in COUNT_DIMENSIONS
    for w in VELOCITY_WINDOWS
)


def _reject(name: str, inputs: dict[str, Value]) -> FiredRule:
    return FiredRule(name, Outcome.REJECT, 0, inputs)


def check_amount_limits(limits: Limits, features: Features) -> list[FiredRule]:
    """The single-payment and daily amount limits of the payment's currency."""
    fired: list[FiredRule] = []
    values: Mapping[str, Any] = features  # feature maps follow the type-checked catalogue
    amount, currency = values["amount"], values["currency"]
    limit = limits.get(f"single_payment.{currency}")
    if limit is not None and amount > limit:
        inputs = {"amount": amount, "currency": currency, "limit": limit}
        fired.append(_reject("limit.single_payment", inputs))
    for key, name, daily in _DAILY_CHECKS:
        limit = limits.get(f"{key}.{currency}")
        # The daily total counts payments before this one, so this one is added to it.
        if limit is not None and values[daily] + amount > limit:
            inputs = {daily: values[daily], "amount": amount, "currency": currency}
            fired.append(_reject(name, {**inputs, "limit": limit}))
    return fired


def check_limits(limits: Limits, features: Features) -> list[FiredRule]:
    """The built-in limit checks that fire (all reject); a limit that is not set never fires."""
    if not limits:
        return []
    fired = check_amount_limits(limits, features)
    values: Mapping[str, Any] = features
    for key, name, present, count in _COUNT_CHECKS:
        limit = limits.get(key)
        # The count includes this payment: a limit of 5 lets the fifth payment through.
        if limit is not None and values[present] and values[count] > limit:
            fired.append(_reject(name, {count: values[count], "limit": limit}))
    return fired


def evaluate(ruleset: RuleSet, features: Features, limits: Limits) -> Verdict:
    """Limits first, then every rule in file order; the most severe fired outcome wins."""
    fired = check_limits(limits, features)
    for predicate, rule in ruleset._checks:
        if predicate(features):
            inputs = {name: features[name] for name in rule.condition.names}
            fired.append(FiredRule(rule.name, rule.outcome, rule.delay_seconds, inputs))
    if not fired:
        return _APPROVED
    outcome = max((hit.outcome for hit in fired), key=_SEVERITY.__getitem__)
    delays = [hit.delay_seconds for hit in fired if hit.outcome is Outcome.DELAY]
    return Verdict(outcome, max(delays) if outcome is Outcome.DELAY else 0, tuple(fired))


_APPROVED = Verdict(Outcome.APPROVE, 0, ())


def evaluate_alerts(ruleset: RuleSet, health: Features) -> list[FiredAlert]:
    """The alerts that fire for one merchant's health features, in file order."""
    return [
        FiredAlert(alert.name, alert.downgrade, {n: health[n] for n in alert.condition.names})
        for alert in ruleset.alerts
        if alert.condition.predicate(health)
    ]
