"""``paystream channels``: the simulated channels, for running the dispatcher by hand."""

from __future__ import annotations

import asyncio
import signal

import typer
from rich.console import Console

from channels.fleet import SimulatedFleet
from paystream.config import PaystreamSettings

channels_app = typer.Typer(help="Simulated payment channels.", no_args_is_help=True)
console = Console()


@channels_app.command("simulate")
def simulate() -> None:
    """Serve the simulated channels on loopback and write the credentials file the dispatcher
    reads (PAYSTREAM_CHANNELS_FILE); runs until stopped. Each simulator's settings are at
    <url>/_sim/settings and its bill of a day at <url>/_sim/bill/YYYY-MM-DD."""
    asyncio.run(_serve(PaystreamSettings()))


async def _serve(settings: PaystreamSettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with SimulatedFleet(notify_url=settings.notify_url) as fleet:
        path = fleet.write_credentials(settings.resolved_channels_file())
        for name, entry in fleet.credentials()["channels"].items():
            console.print(f"{name:<8} {entry['kind']:<7} {entry['base_url']}")
        console.print(f"credentials written to {path}; Ctrl-C stops the simulators")
        await stopping.wait()
