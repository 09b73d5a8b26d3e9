"""The ``paystream`` command."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deploy.session import broker_session
from deploy.toolchain import LocalKafkaError
from events.admin import ensure_topics
from events.schema_store import schema_catalogue
from events.topic_reference import replace_reference, topic_reference
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.cli.bench import bench_app
from paystream.cli.broker import bootstrap_or_exit
from paystream.cli.channels import channels_app
from paystream.cli.kafka import kafka_app
from paystream.cli.risk import risk_app
from paystream.cli.routing import routing_app
from paystream.config import PaystreamSettings
from projections.database import open_database
from projections.payment_channels import PaymentChannelProjection
from projections.payment_status import PaymentStatusProjection
from projections.projector import CombinedProjection, Projector
from projections.risk_decisions import RiskDecisionProjection

app = typer.Typer(
    help="paystream: event-sourced payments on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
topics_app = typer.Typer(help="The topic catalogue.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka", help="The local Apache Kafka broker.")
app.add_typer(topics_app, name="topics")
app.add_typer(bench_app, name="bench", help="Benchmarks that print figures with a baseline.")
app.add_typer(risk_app, name="risk", help="Risk control: rules, merchants, reviews, backtests.")
app.add_typer(routing_app, name="routing", help="Routing: policies as data.")
app.add_typer(channels_app, name="channels", help="Simulated payment channels.")
console = Console()


def _bootstrap(settings: PaystreamSettings) -> str:
    return bootstrap_or_exit(settings, console)


@app.command()
def worker(loglevel: str = "WARNING") -> None:
    """Run the stream processors (intake and risk, routing) until stopped."""
    from streams.worker import run_worker

    settings = PaystreamSettings()
    run_worker(settings, _bootstrap(settings), loglevel)


@app.command()
def dispatcher(loglevel: str = "WARNING") -> None:
    """Run the dispatcher (routed payments through their channels) and its notification
    endpoint until stopped."""
    from streams.dispatch.runner import run_dispatcher

    settings = PaystreamSettings()
    run_dispatcher(settings, _bootstrap(settings), loglevel)


@app.command()
def project() -> None:
    """Run the read-model projections (payment status, risk decisions, channels) until stopped."""
    settings = PaystreamSettings()
    bootstrap = _bootstrap(settings)
    catalogue = TopicCatalogue(settings.namespace)
    asyncio.run(ensure_topics(bootstrap, catalogue, settings.replication_factor))
    projector = Projector(
        bootstrap=bootstrap,
        topic=catalogue.events.name,
        dead_letter_topic=catalogue.dead_letters.name,
        projection=CombinedProjection(
            "payment-status",
            [PaymentStatusProjection(), RiskDecisionProjection(), PaymentChannelProjection()],
        ),
        engine=open_database(settings.resolved_database_url()),
        codec=EventCodec(schema_catalogue(settings.schema_registry_url)),
        group_id=f"{settings.namespace}.projection.payment-status",
    )
    asyncio.run(_run_until_signalled(projector))


async def _run_until_signalled(projector: Projector) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await projector.run(stop)


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="Distinct orders to publish.")] = 3000,
    keep_up: Annotated[bool, typer.Option(help="Leave the local broker running.")] = False,
) -> None:
    """Start the stack, push a realistic batch through it, print a summary, stop the stack."""
    from paystream.demo.run import DemoFailed, run_pipeline, summary_table

    settings = PaystreamSettings()
    try:
        with broker_session(settings, keep_up) as bootstrap:
            console.print(f"Kafka at [bold]{bootstrap}[/bold], namespace {settings.namespace}")
            result = run_pipeline(settings, bootstrap, orders, console)
            console.print(summary_table(result))
    except (LocalKafkaError, DemoFailed) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


@topics_app.command("create")
def topics_create() -> None:
    """Create the catalogue's missing topics."""
    settings = PaystreamSettings()
    catalogue = TopicCatalogue(settings.namespace)
    bootstrap = _bootstrap(settings)
    created = asyncio.run(ensure_topics(bootstrap, catalogue, settings.replication_factor))
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@topics_app.command("doc")
def topics_doc(
    write: Annotated[
        Path | None, typer.Option(help="Update this file between its markers.")
    ] = None,
) -> None:
    """Print the topic reference, or write it into a document between its markers."""
    reference = topic_reference()
    if write is None:
        print(reference)
        return
    write.write_text(replace_reference(write.read_text(), reference))
    console.print(f"updated the topic reference in {write}")
