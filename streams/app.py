"""The Faust app: one worker process runs every stream processor of a namespace.

Topics are declared raw (bytes in, bytes out) and decoded by our codec inside the agent, so a
message that does not decode is dead-lettered with its reason instead of crashing the stream.
"""

from __future__ import annotations

import faust
from faust.types import StreamT

from events.dead_letters import dead_letter_for_message
from events.records import RequestPayment, utc_now
from events.schema_store import schema_catalogue
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec
from paystream.config import PaystreamSettings
from streams.intake import PaymentIntake
from streams.kafka_io import offset_watch, produce, raw_topic
from streams.risk.processor import install_risk
from streams.validation import ValidationPolicy

INTAKE = "intake"


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


def create_app(settings: PaystreamSettings, bootstrap: str) -> faust.App:
    """The Faust app for ``settings.namespace`` with every processor installed."""
    catalogue = TopicCatalogue(settings.namespace)
    session_timeout = settings.session_timeout_ms / 1000
    datadir = settings.home / "streams"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        f"{settings.namespace}.streams",
        broker=_broker_urls(bootstrap),
        autodiscover=False,
        store="memory://",
        topic_partitions=catalogue.commands.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Without a linger every output goes out in its own produce request.
        producer_linger=0.005,
        broker_session_timeout=session_timeout,
        broker_heartbeat_interval=max(session_timeout / 5, 0.5),
        broker_commit_every=5000,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # Faust keeps per-app files here; its default is the working directory.
        datadir=str(datadir),
    )
    codec = EventCodec(schema_catalogue(settings.schema_registry_url))
    install_intake(app, catalogue, settings, codec)
    install_risk(app, catalogue, settings, codec, bootstrap)
    return app


def install_intake(
    app: faust.App, catalogue: TopicCatalogue, settings: PaystreamSettings, codec: EventCodec
) -> None:
    """The intake agent: RequestPayment in, PaymentAccepted/Rejected/CommandDeduplicated out."""
    commands = raw_topic(app, catalogue.commands)
    seen_keys = app.Table(
        "idempotency-keys",
        # Keys and values travel as JSON (the table default serializers).
        key_type=str,
        partitions=catalogue.commands.partitions,
    )
    intake = PaymentIntake(ValidationPolicy.from_settings(settings), seen_keys)

    watch = offset_watch(app, INTAKE)

    async def intake_agent(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            watch.check(event.message)
            try:
                command = codec.decode_as(event.value, [RequestPayment])
            except DecodeError as error:
                letter = dead_letter_for_message(INTAKE, event.message, error)
                await produce(app, catalogue.dead_letters.name, event.key, codec.encode(letter))
                continue
            outcome = intake.handle(command, utc_now())
            key = outcome.payment_id.encode()
            await produce(app, catalogue.events.name, key, codec.encode(outcome))

    app.agent(commands, name=INTAKE)(intake_agent)
