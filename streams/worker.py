"""Running the stream processors as a worker process (``paystream worker``).

A worker is one thread going round a loop: apply what arrived on the broadcast topics, then
handle what arrived for its processor (waiting briefly when nothing did). The Kafka clients'
network work runs in their own C threads. Several workers share the partitions of the group;
a worker that dies is replaced by the others after its session times out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType

from events.admin import ensure_topics
from events.dead_letters import ConsumedMessage, dead_letter_for_message
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec
from paystream.config import PaystreamSettings
from streams.engine.collector import CollectorPacing
from streams.engine.kafka import ProducerLink
from streams.engine.processor import Connection, StreamProcessor
from streams.risk.processor import RiskProcessors

log = logging.getLogger(__name__)
# Longest wait for input before the loop goes round (timers, broadcast topics, signals).
IDLE_WAIT = 0.05


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
        letter = dead_letter_for_message("risk-state", message, error)
        connection.producer.produce(
            connection.dead_letters, message.key, connection.codec.encode(letter)
        )

    risk = RiskProcessors(catalogue, settings, connection.codec, connection.bootstrap, undecodable)
    # The risk stages decide on merchants and rules: they start once those are read.
    risk.reader.start()
    processor = StreamProcessor(risk.spec(), connection)
    processor.start()
    collector = CollectorPacing()
    try:
        while not stopping.is_set():
            risk.reader.poll()
            processor.poll(IDLE_WAIT)
            collector.tick()
    finally:
        try:
            processor.stop()
        finally:
            risk.reader.stop()


def _stop_signal() -> threading.Event:
    """An event that SIGTERM or SIGINT sets; the loop notices it within ``IDLE_WAIT``."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    return stopping
