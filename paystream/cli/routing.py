"""``paystream routing``: check and publish routing policies."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from events.history import published_versions
from events.routing_client import RoutingClient
from events.routing_records import RoutingPolicyPublished
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.cli.broker import bootstrap_or_exit
from paystream.config import PaystreamSettings
from streams.routing.policy import RoutingPolicy
from streams.routing.policy_file import PolicyError, load_policy

routing_app = typer.Typer(help="Routing: policies as data.", no_args_is_help=True)
policy_app = typer.Typer(help="Routing policies: check a file, publish a version.")
routing_app.add_typer(policy_app, name="policy", no_args_is_help=True)
console = Console()
EXIT_INVALID = 1
By = Annotated[str, typer.Option(help="Who publishes (recorded on the event).")]
# Who runs the command, recorded on what it publishes unless named otherwise.
OPERATOR = getpass.getuser()


def _load(path: Path) -> RoutingPolicy:
    try:
        return load_policy(path)
    except PolicyError as error:
        console.print(f"[red]{error}[/red]", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


@policy_app.command("check")
def policy_check(path: Path) -> None:
    """Validate a policy file; every problem is printed with its line."""
    policy = _load(path)
    channels = ", ".join(policy.channels)
    console.print(
        f"{path}: version {policy.version}, channels {channels}, {len(policy.rules)} rules"
    )


async def _published_versions(settings: PaystreamSettings, bootstrap: str) -> list[int]:
    spec = TopicCatalogue(settings.namespace).routing_policies
    return await published_versions(
        bootstrap, spec, EventCodec(schema_catalogue(settings.schema_registry_url))
    )


@policy_app.command("publish")
def policy_publish(path: Path, by: By = OPERATOR) -> None:
    """Publish a policy file as the live version; running routers switch without a restart."""
    policy = _load(path)
    settings = PaystreamSettings()
    bootstrap = bootstrap_or_exit(settings, console)
    versions = asyncio.run(_published_versions(settings, bootstrap))
    if versions and policy.version <= max(versions):
        console.print(
            f"[red]version {policy.version} is not above the published {max(versions)}[/red]"
        )
        raise typer.Exit(EXIT_INVALID)

    async def publish() -> RoutingPolicyPublished:
        async with RoutingClient(bootstrap, namespace=settings.namespace) as client:
            return await client.publish_policy(policy.version, path.read_text(), by)

    published = asyncio.run(publish())
    console.print(f"published routing policy version {policy.version} ({published.digest[:12]})")
