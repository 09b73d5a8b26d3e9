"""``paystream risk ...``: rule sets, merchant onboarding, the review queue, backtests."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from events.history import published_versions, read_history
from events.money import Money
from events.risk_client import RiskClient
from events.risk_records import RiskAssessed
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.cli.backtest_report import print_report
from paystream.cli.broker import bootstrap_or_exit
from paystream.config import PaystreamSettings
from projections.database import open_database
from projections.models import RiskDecision
from projections.risk_decisions import HELD
from streams.risk.backtest import backtest
from streams.risk.rule_file import RuleSetError, load_ruleset
from streams.risk.ruleset import RATINGS, RuleSet, is_limit_key

risk_app = typer.Typer(no_args_is_help=True)
rules_app = typer.Typer(help="Rule sets: check a file, publish a version.", no_args_is_help=True)
merchant_app = typer.Typer(help="Merchant onboarding, ratings and limits.", no_args_is_help=True)
review_app = typer.Typer(help="Payments held for review or delay.", no_args_is_help=True)
risk_app.add_typer(rules_app, name="rules")
risk_app.add_typer(merchant_app, name="merchant")
risk_app.add_typer(review_app, name="review")
console = Console()
EXIT_INVALID = 1
T = TypeVar("T")
# Who runs the command, recorded on what it publishes unless named otherwise.
OPERATOR = getpass.getuser()

Reviewer = Annotated[str, typer.Option(help="Who decides (recorded on the event).")]


def _publish(action: Callable[[RiskClient], Awaitable[T]]) -> T:
    """Run ``action`` with a connected client (made inside the loop, as aiokafka requires)."""
    settings = PaystreamSettings()
    bootstrap = bootstrap_or_exit(settings, console)

    async def run() -> T:
        async with RiskClient(bootstrap, namespace=settings.namespace) as client:
            return await action(client)

    return asyncio.run(run())


def _load(path: Path) -> RuleSet:
    try:
        return load_ruleset(path)
    except RuleSetError as error:
        console.print(f"[red]{error}[/red]", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


@rules_app.command("check")
def rules_check(path: Path) -> None:
    """Validate a rule file; every problem is printed with its line and column."""
    ruleset = _load(path)
    console.print(
        f"{path}: version {ruleset.version}, {len(ruleset.rules)} rules, "
        f"{len(ruleset.alerts)} alerts, limits for ratings {sorted(ruleset.limits_by_rating)}"
    )


async def _published_versions(settings: PaystreamSettings, bootstrap: str) -> list[int]:
    spec = TopicCatalogue(settings.namespace).rulesets
    return await published_versions(
        bootstrap, spec, EventCodec(schema_catalogue(settings.schema_registry_url))
    )


@rules_app.command("publish")
def rules_publish(path: Path, by: Reviewer = OPERATOR) -> None:
    """Publish a rule file as the live version; running workers switch without a restart."""
    ruleset = _load(path)
    settings = PaystreamSettings()
    versions = asyncio.run(_published_versions(settings, bootstrap_or_exit(settings, console)))
    if versions and ruleset.version <= max(versions):
        live = max(versions)
        console.print(f"[red]version {ruleset.version} is not above the published {live}[/red]")
        raise typer.Exit(EXIT_INVALID)
    _publish(lambda c: c.publish_ruleset(ruleset.version, ruleset.digest, ruleset.text, by))
    console.print(f"published rule set version {ruleset.version} ({ruleset.digest[:12]})")


@merchant_app.command("apply")
def merchant_apply(
    merchant_id: str,
    name: Annotated[str, typer.Option(help="Legal name.")],
    category: Annotated[str, typer.Option(help="Business category.")],
    region: Annotated[str | None, typer.Option(help="ISO 3166-1 alpha-2.")] = None,
) -> None:
    """Record a merchant's application; it takes no payments until approved."""
    _publish(lambda c: c.apply_merchant(merchant_id, name, category, region))
    console.print(f"{merchant_id}: application recorded")


@merchant_app.command("approve")
def merchant_approve(
    merchant_id: str,
    rating: Annotated[str, typer.Option(help="Risk rating A (best) to D.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "onboarding review passed",
    reviewer: Reviewer = OPERATOR,
) -> None:
    """Approve a merchant with a risk rating, which sets its default limits."""
    _check_rating(rating)
    _publish(lambda c: c.review_merchant(merchant_id, rating, reviewer, reason))
    console.print(f"{merchant_id}: approved, rating {rating}")


@merchant_app.command("refuse")
def merchant_refuse(
    merchant_id: str,
    reason: Annotated[str, typer.Option(help="Why.")],
    reviewer: Reviewer = OPERATOR,
) -> None:
    """Refuse (or withdraw) a merchant: its payments are rejected from now on."""
    _publish(lambda c: c.review_merchant(merchant_id, None, reviewer, reason))
    console.print(f"{merchant_id}: refused")


@merchant_app.command("rate")
def merchant_rate(
    merchant_id: str,
    rating: Annotated[str, typer.Option(help="New rating A to D.")],
    reason: Annotated[str, typer.Option(help="Why.")],
    by: Reviewer = OPERATOR,
) -> None:
    """Move a merchant to another rating by hand."""
    _check_rating(rating)
    _publish(lambda c: c.change_rating(merchant_id, None, rating, reason, f"manual:{by}"))
    console.print(f"{merchant_id}: rating {rating}")


@merchant_app.command("limits")
def merchant_limits(
    merchant_id: str,
    limits: Annotated[list[str], typer.Argument(help="KEY=VALUE, e.g. single_payment.CNY=50000")],
    reason: Annotated[str, typer.Option(help="Why.")] = "limit override",
    by: Reviewer = OPERATOR,
) -> None:
    """Replace the merchant's own limits (minor units for amounts)."""
    parsed = _parse_limits(limits)
    _publish(lambda c: c.override_limits(merchant_id, parsed, by, reason))
    console.print(f"{merchant_id}: limits {parsed}")


@review_app.command("list")
def review_list() -> None:
    """The payments held for review or delay, oldest first (from the read model)."""
    settings = PaystreamSettings()
    engine = open_database(settings.resolved_database_url())
    with Session(engine) as session:
        query = select(RiskDecision).where(RiskDecision.status.in_(HELD))
        rows = session.scalars(query.order_by(RiskDecision.decided_at)).all()
    for row in rows:
        money = Money(row.amount_minor, row.currency)
        console.print(
            f"{row.payment_id}  {row.status:<11} {row.merchant_id:<16} {money!s:>16}  "
            f"{row.fired_rules}",
            highlight=False,
        )
    console.print(f"{len(rows)} held")


@review_app.command("approve")
def review_approve(
    payment_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "reviewed",
    reviewer: Reviewer = OPERATOR,
) -> None:
    """Release a held payment (a command on the log)."""
    _review(payment_id, True, reviewer, reason)


@review_app.command("reject")
def review_reject(
    payment_id: str,
    reason: Annotated[str, typer.Option(help="Why.")],
    reviewer: Reviewer = OPERATOR,
) -> None:
    """Reject a held payment (a command on the log)."""
    _review(payment_id, False, reviewer, reason)


@risk_app.command("backtest")
def risk_backtest(
    rules: Annotated[Path, typer.Option(help="Candidate rule file.")],
    since: Annotated[datetime | None, typer.Option(help="From this time (UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time (UTC).")] = None,
    show: Annotated[int, typer.Option(help="Flipped payments to list.")] = 20,
) -> None:
    """Replay the log's decisions through a candidate rule set; touches no live state."""
    candidate = _load(rules)
    settings = PaystreamSettings()
    bootstrap = bootstrap_or_exit(settings, console)
    history = asyncio.run(_assessed_history(settings, bootstrap, since, until))
    print_report(console, backtest(history, candidate), candidate, show)


async def _assessed_history(
    settings: PaystreamSettings, bootstrap: str, since: datetime | None, until: datetime | None
) -> list[RiskAssessed]:
    spec = TopicCatalogue(settings.namespace).events
    codec = EventCodec(schema_catalogue(settings.schema_registry_url))
    since, until = _utc(since), _utc(until)
    return [
        record
        async for record in read_history(bootstrap, spec, codec, since)
        if isinstance(record, RiskAssessed)
        and (since is None or record.occurred_at >= since)
        and (until is None or record.occurred_at < until)
    ]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _review(payment_id: str, approve: bool, reviewer: str, reason: str) -> None:
    settings = PaystreamSettings()
    with Session(open_database(settings.resolved_database_url())) as session:
        row = session.get(RiskDecision, payment_id)
    if row is None or row.status not in HELD:
        status = row.status if row else "unknown to the read model"
        console.print(f"[red]payment {payment_id} is not held ({status})[/red]")
        raise typer.Exit(EXIT_INVALID)
    command_id = _publish(lambda c: c.review_payment(payment_id, approve, reviewer, reason))
    verb = "release" if approve else "rejection"
    console.print(f"{payment_id}: {verb} sent as command {command_id}")


def _check_rating(rating: str) -> None:
    if rating not in RATINGS:
        console.print(f"[red]rating {rating!r} is not one of {', '.join(RATINGS)}[/red]")
        raise typer.Exit(EXIT_INVALID)


def _parse_limits(pairs: list[str]) -> dict[str, int]:
    parsed: dict[str, int] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not is_limit_key(key) or not value.isdigit():
            console.print(f"[red]{pair!r} is not KEY=VALUE with a known limit key[/red]")
            raise typer.Exit(EXIT_INVALID)
        parsed[key] = int(value)
    return parsed
