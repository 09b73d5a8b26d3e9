"""Running the stream processors as a worker process (``paystream worker``)."""

from __future__ import annotations

import asyncio

import faust

from events.admin import ensure_topics
from events.topics import TopicCatalogue
from paystream.config import PaystreamSettings
from streams.app import create_app


def run_worker(settings: PaystreamSettings, bootstrap: str, loglevel: str = "WARNING") -> None:
    """Create the catalogue's topics if missing, then run the Faust worker until signalled."""
    catalogue = TopicCatalogue(settings.namespace)
    asyncio.run(ensure_topics(bootstrap, catalogue, settings.replication_factor))
    app = create_app(settings, bootstrap)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so that every log call turns it:
    # aiokafka then builds a debug record per message sent, which costs more than our logic.
    worker.spinner = None
    worker.execute_from_commandline()
