"""Running the dispatcher as a process (``paystream dispatcher``).

One asyncio loop serves both halves: the dispatch service (the payment log in, channel calls
out) and the notification endpoint the channels call back. The channels' credentials come
from the credentials file; SIGTERM lets running dispatches finish before it commits and stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from zoneinfo import ZoneInfo

from aiohttp import web

from channels.credentials import adapters_from, load_credentials
from events.admin import ensure_topics
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.config import PaystreamSettings
from streams.dispatch.notifications import NotificationReceiver
from streams.dispatch.service import DispatchService
from streams.dispatch.settling import SettleTiming

log = logging.getLogger(__name__)


def run_dispatcher(settings: PaystreamSettings, bootstrap: str, loglevel: str = "WARNING") -> None:
    """Dispatch routed payments and receive notifications until signalled."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(_serve(settings, bootstrap))


async def _serve(settings: PaystreamSettings, bootstrap: str) -> None:
    catalogue = TopicCatalogue(settings.namespace)
    await ensure_topics(bootstrap, catalogue, settings.replication_factor)
    adapters = adapters_from(load_credentials(settings.resolved_channels_file()))
    service = DispatchService(
        bootstrap,
        catalogue,
        EventCodec(schema_catalogue(settings.schema_registry_url)),
        adapters,
        settings.notify_url,
        SettleTiming(first_query_s=settings.channel_query_seconds),
        settings.session_timeout_ms,
        ZoneInfo(settings.business_timezone),
    )
    receiver = NotificationReceiver(adapters, service.producer, service.emit)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.notify_port).start()
    try:
        await service.run(_stop_signal())
    finally:
        await runner.cleanup()
        for adapter in adapters.values():
            await adapter.close()


def _stop_signal() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping
