"""A broker for the length of one command: the configured cluster, or the local broker,
started if needed and stopped afterwards only if this command started it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from deploy.local_kafka import LocalKafka
from paystream.config import PaystreamSettings


@contextlib.contextmanager
def broker_session(settings: PaystreamSettings, keep_up: bool = False) -> Iterator[str]:
    """Yield bootstrap servers; a local broker this call started is stopped unless ``keep_up``."""
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap
        return
    local = LocalKafka(settings)
    started_here = local.status() is None
    bootstrap = local.start().bootstrap
    try:
        yield bootstrap
    finally:
        if started_here and not keep_up:
            local.stop()
