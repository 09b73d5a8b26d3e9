"""Printing a backtest: outcome counts before and after, the money that flips, the flips."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from events.money import Money
from events.risk_records import RiskOutcome
from streams.risk.backtest import BacktestReport
from streams.risk.ruleset import RuleSet


def outcome_table(report: BacktestReport) -> Table:
    """Payments per outcome with the live rules and with the candidate."""
    table = Table(title=f"{report.payments:,} decisions replayed")
    for column in ("outcome", "live", "candidate", "change"):
        table.add_column(column, justify="left" if column == "outcome" else "right")
    for outcome in RiskOutcome:
        before, after = report.before[outcome], report.after[outcome]
        table.add_row(str(outcome), f"{before:,}", f"{after:,}", f"{after - before:+,}")
    return table


def money_table(report: BacktestReport) -> Table:
    """The amounts of the payments that flip, by change and currency."""
    table = Table(title="money in flipped payments")
    for column in ("from", "to", "payments", "amount"):
        table.add_column(column, justify="right" if column in ("payments", "amount") else "left")
    counts: dict[tuple[RiskOutcome, RiskOutcome, str], int] = {}
    for flip in report.flips:
        key = (flip.before, flip.after, flip.currency)
        counts[key] = counts.get(key, 0) + 1
    for (before, after, currency), amount in sorted(report.money.items()):
        count = counts[(before, after, currency)]
        money = Money(amount, currency)
        table.add_row(str(before), str(after), f"{count:,}", str(money))
    return table


def flips_table(report: BacktestReport, show: int) -> Table:
    """The first ``show`` flipped payments with the rules behind each side."""
    table = Table(
        title=f"flipped payments (first {min(show, len(report.flips))} of {len(report.flips)})"
    )
    for column in ("payment", "merchant", "amount", "live", "candidate", "candidate rules"):
        table.add_column(column)
    for flip in report.flips[:show]:
        table.add_row(
            flip.payment_id,
            flip.merchant_id,
            str(Money(flip.amount_minor, flip.currency)),
            str(flip.before),
            str(flip.after),
            ", ".join(flip.rules_after) or "-",
        )
    return table


def print_report(console: Console, report: BacktestReport, candidate: RuleSet, show: int) -> None:
    """The whole backtest report."""
    console.print(f"candidate rule set version {candidate.version} ({candidate.digest[:12]})")
    console.print(outcome_table(report))
    console.print(money_table(report))
    if report.flips and show > 0:
        console.print(flips_table(report, show))
