"""``paystream demo``: the whole pipeline on a realistic batch, with progress and a summary."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from channels.fleet import SimulatedFleet
from events.admin import ensure_topics
from events.client import PaymentsClient
from events.records import utc_now
from events.risk_client import RiskClient
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.config import PaystreamSettings
from paystream.demo.orders import OrderBatch, realistic_batch
from paystream.demo.risk_scenario import add_card_testing, demo_merchants, onboard
from paystream.demo.tally import BatchScope, LogFollower, LogTally, end_offsets
from paystream.stack import ChildProcess, StackEnvironment
from projections.database import open_database
from projections.models import PaymentStatus

PUBLISH_CHUNK = 250


class DemoFailed(RuntimeError):
    """The pipeline did not process the batch in time; the message carries the logs' tails."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo published and what the pipeline made of it."""

    batch: OrderBatch
    tally: LogTally
    projected: int
    seconds: float


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def publish_batch(
    bootstrap: str, catalogue: TopicCatalogue, batch: OrderBatch, progress: Progress
) -> None:
    """Publish every command through PaymentsClient, then the poison messages raw."""
    task = progress.add_task("publishing orders", total=len(batch.commands) + len(batch.poison))
    async with PaymentsClient(bootstrap, namespace=catalogue.namespace) as client:
        for start in range(0, len(batch.commands), PUBLISH_CHUNK):
            chunk = batch.commands[start : start + PUBLISH_CHUNK]
            await client.publish_many(chunk)
            progress.advance(task, len(chunk))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for poison in batch.poison:
            await producer.send_and_wait(catalogue.commands.name, poison, key=b"poison")
            progress.advance(task)
    finally:
        await producer.stop()


def projected_count(engine: Engine, payment_ids: list[str]) -> int:
    """How many of ``payment_ids`` the payment-status read model holds."""
    with Session(engine) as session:
        return sum(
            session.scalar(
                select(func.count()).where(PaymentStatus.payment_id.in_(payment_ids[i : i + 500]))
            )
            or 0
            for i in range(0, len(payment_ids), 500)
        )


async def follow_pipeline(
    bootstrap: str,
    codec: EventCodec,
    start: dict[TopicPartition, int],
    scope: BatchScope,
    batch: OrderBatch,
    progress: Progress,
    timeout: float,
) -> LogTally:
    """Watch the log until every command and poison message is accounted for."""
    expected = len(batch.commands) + len(batch.poison)
    task = progress.add_task("processed by the worker", total=expected)
    deadline = time.monotonic() + timeout
    async with LogFollower(bootstrap, codec, start, scope) as follower:
        while follower.tally.processed < expected:
            if time.monotonic() > deadline:
                raise DemoFailed(f"only {follower.tally.processed} of {expected} processed")
            await follower.poll()
            progress.update(task, completed=follower.tally.processed)
        await _follow_risk(follower, progress, deadline)
        return follower.tally


async def _follow_risk(follower: LogFollower, progress: Progress, deadline: float) -> None:
    """Keep watching until the risk stage decided every accepted payment, and every payment it
    approved was captured or failed on its channels."""
    expected = follower.tally.accepted()
    task = progress.add_task("decided by risk control", total=expected)
    while len(follower.tally.risk) < expected:
        if time.monotonic() > deadline:
            raise DemoFailed(f"risk decided only {len(follower.tally.risk)} of {expected}")
        await follower.poll()
        progress.update(task, completed=len(follower.tally.risk))
    approved = follower.tally.approved()
    task = progress.add_task("settled on the channels", total=len(approved))
    while not approved <= follower.tally.ended.keys():
        if time.monotonic() > deadline:
            settled = len(approved & follower.tally.ended.keys())
            raise DemoFailed(f"only {settled} of {len(approved)} approved payments settled")
        await follower.poll()
        progress.update(task, completed=len(approved & follower.tally.ended.keys()))


async def wait_projected(
    database_url: str, batch: OrderBatch, progress: Progress, timeout: float
) -> int:
    """Wait until the read model holds every payment of the batch."""
    wanted = list(batch.expected)
    task = progress.add_task("projected to the read model", total=len(wanted))
    deadline = time.monotonic() + timeout
    count = 0
    engine = open_database(database_url)
    try:
        while count < len(wanted) and time.monotonic() < deadline:
            count = await asyncio.to_thread(projected_count, engine, wanted)
            progress.update(task, completed=count)
            await asyncio.sleep(0.3)
    finally:
        engine.dispose()
    return count


async def drive(
    environment: StackEnvironment, batch: OrderBatch, console: Console, timeout: float
) -> DemoResult:
    """Publish the batch and follow it through the worker and the projection."""
    catalogue = TopicCatalogue(environment.namespace)
    codec = EventCodec(schema_catalogue(None))
    topics = [catalogue.events.name, catalogue.dead_letters.name, catalogue.commands.name]
    offsets = await end_offsets(environment.bootstrap, topics)
    start = {tp: offset for tp, offset in offsets.items() if tp.topic != catalogue.commands.name}
    scope = BatchScope(
        command_ids=frozenset(command.command_id for command in batch.commands),
        commands_topic=catalogue.commands.name,
        commands_start={
            tp.partition: offset
            for tp, offset in offsets.items()
            if tp.topic == catalogue.commands.name
        },
        payment_ids=frozenset(batch.expected),
    )
    began = time.monotonic()
    with _progress(console) as progress:
        async with RiskClient(environment.bootstrap, namespace=environment.namespace) as client:
            await onboard(client, demo_merchants(seed=len(batch.commands)))
        await publish_batch(environment.bootstrap, catalogue, batch, progress)
        tally = await follow_pipeline(
            environment.bootstrap, codec, start, scope, batch, progress, timeout
        )
        projected = await wait_projected(environment.database_url, batch, progress, timeout)
    return DemoResult(batch, tally, projected, time.monotonic() - began)


def run_pipeline(
    settings: PaystreamSettings,
    bootstrap: str,
    orders: int,
    console: Console,
    timeout: float = 300.0,
) -> DemoResult:
    """Run the simulated channels here and the worker, dispatcher and projector as child
    processes; drive a batch through; stop them all."""
    catalogue = TopicCatalogue(settings.namespace)
    asyncio.run(ensure_topics(bootstrap, catalogue, settings.replication_factor))
    batch = realistic_batch(
        orders,
        seed=int(time.time()),
        max_amount_minor=settings.max_amount_minor,
        max_amount_minor_by_currency=settings.max_amount_minor_by_currency,
    )
    add_card_testing(batch, random.Random(orders), utc_now())
    return asyncio.run(_run_with_channels(settings, bootstrap, batch, console, timeout))


async def _run_with_channels(
    settings: PaystreamSettings,
    bootstrap: str,
    batch: OrderBatch,
    console: Console,
    timeout: float,
) -> DemoResult:
    async with SimulatedFleet(notify_url=settings.notify_url) as fleet:
        credentials = fleet.write_credentials(settings.resolved_channels_file())
        environment = StackEnvironment(
            bootstrap,
            settings.namespace,
            settings.resolved_database_url(),
            {"PAYSTREAM_CHANNELS_FILE": str(credentials)},
        )
        logs = Path(settings.home) / "logs"
        roles = ("worker", "dispatcher", "project")
        children = [ChildProcess(role, environment, logs / f"{role}.log") for role in roles]
        for child in children:
            child.start()
        try:
            return await drive(environment, batch, console, timeout)
        except DemoFailed as failure:
            tails = "\n".join(f"--- {c.role} ({c.log_path}) ---\n{c.log_tail()}" for c in children)
            raise DemoFailed(f"{failure}\n{tails}") from failure
        finally:
            for child in children:
                await asyncio.to_thread(child.stop)


def summary_table(result: DemoResult) -> Table:
    """The demo's closing summary."""
    tally, batch = result.tally, result.batch
    table = Table(title="paystream demo summary", show_header=False)
    table.add_row("orders published (distinct)", str(len(batch.expected)))
    table.add_row(
        "repeated commands published",
        f"{batch.repeats} ({batch.conflicting_repeats} reusing a key for a different amount)",
    )
    table.add_row("poison messages published", str(len(batch.poison)))
    table.add_row("accepted", str(tally.accepted()))
    for reason, count in sorted(tally.rejected_by_reason().items()):
        table.add_row(f"rejected: {reason}", str(count))
    conflicts = sum(not event.request_matches for event in tally.deduplicated.values())
    table.add_row("duplicates suppressed", f"{len(tally.deduplicated)} ({conflicts} conflicting)")
    table.add_row("dead-lettered", str(len(tally.dead_letters)))
    for outcome, count in sorted(tally.risk_outcomes().items()):
        table.add_row(f"risk: {outcome}", str(count))
    for rule, count in tally.rules_fired().most_common(6):
        table.add_row(f"  rule fired: {rule}", str(count))
    for channel, count in sorted(tally.captured_by_channel().items()):
        table.add_row(f"captured on {channel}", str(count))
    for reason, count in sorted(tally.failed_by_reason().items()):
        table.add_row(f"not captured: {reason}", str(count))
    table.add_row("payments in the read model", str(result.projected))
    commands = len(batch.commands) + len(batch.poison)
    table.add_row(
        "end to end, incl. worker start-up", f"{commands / result.seconds:,.0f} commands/s"
    )
    if tally.first_at and tally.last_at and tally.last_at > tally.first_at:
        span = (tally.last_at - tally.first_at).total_seconds()
        table.add_row(
            "worker throughput (first to last decision)", f"{commands / span:,.0f} commands/s"
        )
    return table
