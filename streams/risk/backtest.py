"""Backtests: how a candidate rule set would have decided the payments already on the log.

Every RiskAssessed event records all the features the rules could read, the merchant's
rating and its limit overrides, so a candidate is evaluated on exactly what the live rule set
saw. Nothing live is touched. The counterfactual stops at each decision: a different outcome
would have changed later counters (a payment rejected instead of approved frees daily
amount), which a backtest does not re-simulate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.risk_records import RiskAssessed, RiskOutcome
from streams.risk.assessment import FEATURES_MISSING, NOT_APPROVED, decide_firings, overall
from streams.risk.merchants import MerchantProfile, MerchantStatus
from streams.risk.ruleset import RuleSet


@dataclass(frozen=True)
class Flip:
    """A payment the candidate would have decided differently."""

    payment_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    before: RiskOutcome
    after: RiskOutcome
    rules_before: tuple[str, ...]
    rules_after: tuple[str, ...]


@dataclass
class BacktestReport:
    """Counts by outcome before and after, the flips, and the money that flips."""

    payments: int = 0
    before: Counter[RiskOutcome] = field(default_factory=Counter)
    after: Counter[RiskOutcome] = field(default_factory=Counter)
    flips: list[Flip] = field(default_factory=list)
    money: Counter[tuple[RiskOutcome, RiskOutcome, str]] = field(default_factory=Counter)

    def add(self, assessed: RiskAssessed, after: RiskOutcome, rules_after: list[str]) -> None:
        """Count one payment's decision before and after."""
        self.payments += 1
        self.before[assessed.outcome] += 1
        self.after[after] += 1
        if after is assessed.outcome:
            return
        self.money[(assessed.outcome, after, assessed.currency)] += assessed.amount_minor
        self.flips.append(
            Flip(
                payment_id=assessed.payment_id,
                merchant_id=assessed.merchant_id,
                amount_minor=assessed.amount_minor,
                currency=assessed.currency,
                before=assessed.outcome,
                after=after,
                rules_before=tuple(firing.rule for firing in assessed.fired),
                rules_after=tuple(rules_after),
            )
        )


def recorded_profile(assessed: RiskAssessed) -> MerchantProfile:
    """The merchant as the live decision saw it."""
    refused = any(firing.rule == NOT_APPROVED for firing in assessed.fired)
    status = MerchantStatus.REFUSED if refused else MerchantStatus.APPROVED
    overrides = dict(assessed.limit_overrides)
    return MerchantProfile(assessed.merchant_id, status, assessed.merchant_rating, overrides)


def recorded_missing(assessed: RiskAssessed) -> tuple[str, ...]:
    """The dimensions whose features had not arrived when the payment was decided."""
    for firing in assessed.fired:
        if firing.rule == FEATURES_MISSING:
            return tuple(str(firing.inputs["missing"]).split(","))
    return ()


def redecide(assessed: RiskAssessed, candidate: RuleSet) -> tuple[RiskOutcome, list[str]]:
    """The candidate's outcome for a recorded decision, and the rules that fired."""
    firings = decide_firings(
        dict(assessed.features),
        recorded_profile(assessed),
        candidate,
        recorded_missing(assessed),
    )
    outcome, _ = overall(firings)
    return outcome, [firing.rule for firing in firings]


def backtest(history: Iterable[RiskAssessed], candidate: RuleSet) -> BacktestReport:
    """Re-decide every recorded decision with ``candidate``; first copies only."""
    report = BacktestReport()
    seen: set[str] = set()
    for assessed in history:
        if assessed.event_id in seen:
            continue  # a copy redelivered after a crash
        seen.add(assessed.event_id)
        report.add(assessed, *redecide(assessed, candidate))
    return report
