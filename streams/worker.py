"""Running the stream processors as a worker process (``paystream worker``).

One worker runs every processor of a namespace, each in its own consumer group, sharing one
idempotent producer. Several workers share the partitions of each group; a worker that dies is
replaced by the others after its session times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

import uvloop
from aiokafka import AIOKafkaProducer

from events.admin import ensure_topics
from events.dead_letters import ConsumedMessage, dead_letter_for_message
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec
from paystream.config import PaystreamSettings
from streams.engine.processor import Connection, StreamProcessor
from streams.risk.processor import RiskProcessors

log = logging.getLogger(__name__)


def run_worker(settings: PaystreamSettings, bootstrap: str, loglevel: str = "WARNING") -> None:
    """Create the catalogue's topics if missing, then run every processor until signalled."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # The stores keep many small long-lived objects; the collector's default first threshold
    # (700 allocations) walks them far more often than garbage appears.
    gc.set_threshold(200_000, 50, 100)
    # libuv's loop spends a fraction of asyncio's own on each socket event and callback.
    uvloop.run(_serve(settings, bootstrap))


async def _serve(settings: PaystreamSettings, bootstrap: str) -> None:
    catalogue = TopicCatalogue(settings.namespace)
    await ensure_topics(bootstrap, catalogue, settings.replication_factor)
    codec = EventCodec(schema_catalogue(settings.schema_registry_url))
    # Processors hand over whole batches already: a linger would only add latency.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    try:
        connection = Connection(
            bootstrap,
            settings.namespace,
            codec,
            producer,
            catalogue.dead_letters.name,
            settings.session_timeout_ms,
        )
        await _run(settings, catalogue, connection)
    finally:
        await producer.stop()


async def _run(
    settings: PaystreamSettings, catalogue: TopicCatalogue, connection: Connection
) -> None:
    stopping = _stop_signal()

    async def undecodable(message: ConsumedMessage, error: DecodeError) -> None:
        letter = dead_letter_for_message("risk-state", message, error)
        value = connection.codec.encode(letter)
        await (await connection.producer.send(connection.dead_letters, value, key=message.key))

    risk = RiskProcessors(catalogue, settings, connection.codec, connection.bootstrap, undecodable)
    tasks: list[asyncio.Task[None]] = []
    try:
        # The risk stages decide on merchants and rules: they start once those are read.
        await risk.reader.start()
        tasks += [
            asyncio.create_task(StreamProcessor(spec, connection).run()) for spec in risk.specs()
        ]
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stopping}:
            task.result()  # a processor that failed takes the worker down with its error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await risk.reader.stop()


def _stop_signal() -> asyncio.Future[None]:
    """A future that SIGTERM or SIGINT completes."""
    loop = asyncio.get_running_loop()
    stopping: asyncio.Future[None] = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _complete, stopping)
    return stopping


def _complete(future: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        future.set_result(None)
