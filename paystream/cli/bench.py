"""``paystream bench ...``: benchmarks that print figures and a same-run baseline."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.session import broker_session
from deploy.toolchain import LocalKafkaError
from paystream.config import PaystreamSettings

bench_app = typer.Typer(no_args_is_help=True)
console = Console()


@bench_app.command("pipeline")
def pipeline(
    messages: Annotated[int, typer.Option(help="Commands to push through each run.")] = 30_000,
    workers: Annotated[int, typer.Option(help="Intake worker processes sharing the work.")] = 1,
) -> None:
    """Bare aiokafka relay vs the worker's intake on one broker: messages/s and their ratio."""
    from paystream.bench.pipeline import run_pipeline_bench

    settings = PaystreamSettings()
    try:
        with broker_session(settings) as bootstrap:
            rates = run_pipeline_bench(settings, bootstrap, messages, workers)
    except (LocalKafkaError, TimeoutError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"pipeline benchmark, {messages:,} messages, one broker")
    for column in ("run", "messages", "seconds", "messages/s"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for rate in rates:
        table.add_row(
            rate.name, f"{rate.messages:,}", f"{rate.seconds:.2f}", f"{rate.per_second:,.0f}"
        )
    console.print(table)
    relay, processor = rates[0], rates[1]
    console.print(f"intake / bare relay = {processor.per_second / relay.per_second:.3f}")


@bench_app.command("risk")
def risk(
    payments: Annotated[int, typer.Option(help="Payments per offered rate.")] = 3_000,
    rates: Annotated[str, typer.Option(help="Offered payments/s, comma-separated.")] = "100,1000",
    workers: Annotated[int, typer.Option(help="Worker processes sharing the partitions.")] = 1,
) -> None:
    """Rule engine alone and the risk processor's added latency, with the bare relay baseline."""
    from paystream.bench.risk import run_risk_bench

    settings = PaystreamSettings()
    offered = [int(rate) for rate in rates.split(",")]
    try:
        with broker_session(settings) as bootstrap:
            throughputs, latencies = run_risk_bench(settings, bootstrap, payments, offered, workers)
    except (LocalKafkaError, TimeoutError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    table = Table(title="risk benchmark, one broker")
    for column in ("run", "count", "seconds", "per second"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for rate in throughputs:
        table.add_row(
            rate.name, f"{rate.messages:,}", f"{rate.seconds:.2f}", f"{rate.per_second:,.0f}"
        )
    console.print(table)
    label = "one worker" if workers == 1 else f"{workers} workers"
    processor = Table(title=f"risk processor ({label}): added latency per payment")
    columns = (
        "offered/s",
        "payments",
        "decided/s",
        "p50 ms",
        "p99 ms",
        "p99 by hop ms",
        "worker CPU ms/payment",
    )
    for column in columns:
        processor.add_column(column, justify="right")
    for run in latencies:
        processor.add_row(
            f"{run.offered_per_second:,}",
            f"{run.payments:,}",
            f"{run.decided_per_second:,.0f}",
            f"{run.p50_ms:,.0f}",
            f"{run.p99_ms:,.0f}",
            " / ".join(f"{hop:,.0f}" for hop in run.hop_p99_ms),
            "n/a" if run.worker_cpu_ms is None else f"{run.worker_cpu_ms:.2f}",
        )
    console.print(processor)
    console.print(
        "hops: accepted → requests sent / requests → snapshots sent / snapshots → decision"
    )


@bench_app.command("route")
def route(
    payments: Annotated[int, typer.Option(help="Payments per offered rate.")] = 3_000,
    rates: Annotated[str, typer.Option(help="Offered payments/s, comma-separated.")] = "100,1000",
) -> None:
    """Routing decisions alone and the router's added latency, with the bare relay baseline."""
    from paystream.bench.route import DECISIONS_GOAL, P99_GOAL_MS, P99_GOAL_RATE, run_route_bench

    settings = PaystreamSettings()
    offered = [int(rate) for rate in rates.split(",")]
    try:
        with broker_session(settings) as bootstrap:
            throughputs, latencies = run_route_bench(settings, bootstrap, payments, offered)
    except (LocalKafkaError, TimeoutError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"routing benchmark, one broker (goal: {DECISIONS_GOAL:,} decisions/s)")
    for column in ("run", "count", "seconds", "per second"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for rate in throughputs:
        table.add_row(
            rate.name, f"{rate.messages:,}", f"{rate.seconds:.2f}", f"{rate.per_second:,.0f}"
        )
    console.print(table)
    processor = Table(
        title=f"router processor (one worker, routing only): added latency per payment "
        f"(goal: p99 ≤ {P99_GOAL_MS:.0f} ms at {P99_GOAL_RATE:,}/s)"
    )
    columns = ("offered/s", "payments", "routed/s", "p50 ms", "p99 ms", "worker CPU ms/payment")
    for column in columns:
        processor.add_column(column, justify="right")
    for run in latencies:
        processor.add_row(
            f"{run.offered_per_second:,}",
            f"{run.payments:,}",
            f"{run.routed_per_second:,.0f}",
            f"{run.p50_ms:,.0f}",
            f"{run.p99_ms:,.0f}",
            "n/a" if run.worker_cpu_ms is None else f"{run.worker_cpu_ms:.2f}",
        )
    console.print(processor)
    console.print("added latency: RiskAssessed → PaymentRouted, log timestamps")
