"""Finding the broker for a CLI command, or exiting with the reason."""

from __future__ import annotations

import typer
from rich.console import Console

from deploy.local_kafka import BrokerUnavailable, resolve_bootstrap
from paystream.config import PaystreamSettings

EXIT_NO_BROKER = 2


def bootstrap_or_exit(settings: PaystreamSettings, console: Console) -> str:
    """The bootstrap servers to use; prints why and exits 2 when there is no broker."""
    try:
        return resolve_bootstrap(settings)
    except BrokerUnavailable as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(EXIT_NO_BROKER) from None
