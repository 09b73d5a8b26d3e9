"""Running the stream processors as a worker process (``paystream worker``).

A worker runs the processors of its roles (``PAYSTREAM_WORKER_ROLES``: risk, which includes
intake, and routing), each in its own consumer group. It is one thread going round a loop:
for each processor, apply what arrived on its broadcast topics, then handle what arrived for
it (waiting briefly when nothing did). The Kafka clients' network work runs in their own C
threads. Several workers share the partitions of each group; a worker that dies is replaced
by the others after its session times out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from zoneinfo import ZoneInfo

from events.admin import ensure_topics
from events.dead_letters import ConsumedMessage, dead_letter_for_message
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec
from paystream.config import PaystreamSettings
from streams.engine.broadcast import BroadcastReader, Undecodable
from streams.engine.collector import CollectorPacing
from streams.engine.kafka import ProducerLink
from streams.engine.processor import Connection, ProcessorSpec, StreamProcessor
from streams.risk.processor import RiskProcessors
from streams.routing.processor import Router

log = logging.getLogger(__name__)
# Longest wait for input before the loop goes round (timers, broadcast topics, signals).
IDLE_WAIT = 0.05
SHARED_WAIT = 0.002


def run_worker(settings: PaystreamSettings, bootstrap: str, loglevel: str = "WARNING") -> None:
    """Create the catalogue's topics if missing, then run every processor until signalled."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    catalogue = TopicCatalogue(settings.namespace)
    asyncio.run(ensure_topics(bootstrap, catalogue, settings.replication_factor))
    codec = EventCodec(schema_catalogue(settings.schema_registry_url))
    producer = ProducerLink(bootstrap, unhurried=catalogue.unhurried())
    connection = Connection(
        bootstrap,
        settings.namespace,
        codec,
        producer,
        catalogue.dead_letters.name,
        settings.session_timeout_ms,
    )
    try:
        _run(settings, catalogue, connection, _stop_signal())
    finally:
        producer.settle()


def _run(
    settings: PaystreamSettings,
    catalogue: TopicCatalogue,
    connection: Connection,
    stopping: threading.Event,
) -> None:
    def undecodable(message: ConsumedMessage, error: DecodeError) -> None:
        letter = dead_letter_for_message("broadcast", message, error)
        connection.producer.produce(
            connection.dead_letters, message.key, connection.codec.encode(letter)
        )

    roles = _roles(settings, catalogue, connection, undecodable)
    # Each processor decides on what its broadcast topics say: it starts once they are read.
    for reader, _ in roles:
        reader.start()
    processors = [StreamProcessor(spec, connection) for _, spec in roles]
    for processor in processors:
        processor.start()
    collector = CollectorPacing()
    # With several processors a wait in one delays the others' input: each waits briefly.
    wait = IDLE_WAIT if len(processors) == 1 else SHARED_WAIT
    try:
        while not stopping.is_set():
            for (reader, _), processor in zip(roles, processors, strict=True):
                reader.poll()
                processor.poll(wait)
            collector.tick()
    finally:
        _stop_all(processors, [reader for reader, _ in roles])


def _roles(
    settings: PaystreamSettings,
    catalogue: TopicCatalogue,
    connection: Connection,
    undecodable: Undecodable,
) -> list[tuple[BroadcastReader, ProcessorSpec]]:
    """The processors this worker runs (``PAYSTREAM_WORKER_ROLES``), each with its reader."""
    codec, bootstrap = connection.codec, connection.bootstrap
    roles: list[tuple[BroadcastReader, ProcessorSpec]] = []
    if "risk" in settings.worker_roles:
        risk = RiskProcessors(catalogue, settings, codec, bootstrap, undecodable)
        roles.append((risk.reader, risk.spec()))
    if "routing" in settings.worker_roles:
        zone = ZoneInfo(settings.business_timezone)
        max_age_ms = settings.routing_max_age_seconds * 1000
        router = Router(catalogue, codec, bootstrap, zone, undecodable, max_age_ms=max_age_ms)
        roles.append((router.reader, router.spec()))
    return roles


def _stop_all(processors: list[StreamProcessor], readers: list[BroadcastReader]) -> None:
    try:
        for processor in processors:
            processor.stop()
    finally:
        for reader in readers:
            reader.stop()


def _stop_signal() -> threading.Event:
    """An event that SIGTERM or SIGINT sets; the loop notices it within ``IDLE_WAIT``."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    return stopping
