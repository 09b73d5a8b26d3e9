"""``paystream kafka start|stop|status``: the local single-node Apache Kafka broker."""

from __future__ import annotations

import asyncio
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from deploy.local_kafka import BrokerState, LocalKafka
from deploy.toolchain import LocalKafkaError
from paystream.config import PaystreamSettings

kafka_app = typer.Typer(
    help="Run a local single-node Apache Kafka broker (unless PAYSTREAM_KAFKA_BOOTSTRAP is set).",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

EXIT_NOT_RUNNING = 1
EXIT_FAILED = 2


@kafka_app.command()
def start(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker to answer.")
    ] = 90.0,
) -> None:
    """Start the local broker unless it runs, then create the missing topics."""
    settings = PaystreamSettings()
    if settings.kafka_bootstrap:
        _say_external(settings.kafka_bootstrap)
        return
    try:
        state = LocalKafka(settings).start(timeout=timeout)
    except LocalKafkaError as error:
        _fail(str(error))
    _show(state, "running")
    try:
        created = _create_topics(state.bootstrap, settings.namespace)
    except Exception as error:  # the broker runs; report why the topics could not be made
        _fail(f"The broker runs, but creating the topics failed: {type(error).__name__}: {error}")
    if created:
        console.print(f"Topics created: {', '.join(created)}", markup=False)
    else:
        console.print("Topics: all present already.")


@kafka_app.command()
def stop(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a clean shutdown before SIGKILL.")
    ] = 30.0,
) -> None:
    """Stop the local broker started by `paystream kafka start`."""
    kafka = LocalKafka(PaystreamSettings())
    state = kafka.status()
    if state is None or not kafka.stop(timeout=timeout):
        console.print("No local broker of ours is running.")
        return
    console.print(f"Stopped the local Kafka broker (pid {state.pid}, {state.bootstrap}).")


@kafka_app.command()
def status() -> None:
    """Show whether the local broker runs; exit code 1 when it does not."""
    settings = PaystreamSettings()
    if settings.kafka_bootstrap:
        _say_external(settings.kafka_bootstrap)
        return
    state = LocalKafka(settings).status()
    if state is None:
        console.print("The local Kafka broker is not running.")
        raise typer.Exit(EXIT_NOT_RUNNING)
    _show(state, f"running since {state.started_at}")


def _create_topics(bootstrap: str, namespace: str) -> list[str]:
    # Imported here so that `stop` and `status` work without the events package's dependencies.
    from events.admin import ensure_topics
    from events.topics import TopicCatalogue

    return asyncio.run(ensure_topics(bootstrap, TopicCatalogue(namespace)))


def _show(state: BrokerState, how: str) -> None:
    console.print(
        f"Kafka {state.kafka_version} broker {how} at [bold]{state.bootstrap}[/bold] "
        f"(pid {state.pid})"
    )
    console.print(f"  log: {state.log_file}", markup=False)


def _say_external(bootstrap: str) -> None:
    console.print(
        f"PAYSTREAM_KAFKA_BOOTSTRAP is set: using the cluster at {bootstrap}; "
        "the local broker launcher is not used.",
        markup=False,
    )


def _fail(message: str) -> NoReturn:
    errors.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(EXIT_FAILED)
