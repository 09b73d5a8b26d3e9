"""What every paystream client shares: an idempotent producer, the codec, the topic names."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer

from events.records import AvroRecord
from events.schema_store import ManifestSchemas, SchemaCatalogue
from events.topics import TopicCatalogue
from events.wire import EventCodec


class Publisher:
    """An asyncio Kafka publisher; stored means acknowledged by all in-sync replicas."""

    def __init__(
        self,
        bootstrap: str,
        *,
        namespace: str = "paystream",
        schemas: SchemaCatalogue | None = None,
        linger_ms: int = 5,
    ) -> None:
        self.topics = TopicCatalogue(namespace)
        self._codec = EventCodec(schemas or ManifestSchemas())
        # Idempotent producer: a retry inside the client never writes a record twice.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to the cluster."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        await self._producer.stop()

    async def _stored(self, topic: str, key: bytes, record: AvroRecord) -> None:
        """Write one record and wait for the broker to store it."""
        await self._producer.send_and_wait(topic, value=self._codec.encode(record), key=key)


class RecordPublisher(Publisher):
    """Publishes one record per call and returns once all in-sync replicas have it."""

    def __init__(
        self,
        bootstrap: str,
        *,
        namespace: str = "paystream",
        schemas: SchemaCatalogue | None = None,
    ) -> None:
        # Each call waits for its record, so lingering for a batch would only add latency.
        super().__init__(bootstrap, namespace=namespace, schemas=schemas, linger_ms=0)

    async def publish(self, topic: str, key: bytes, record: AvroRecord) -> None:
        """Write one record and wait for the broker to store it."""
        await self._stored(topic, key, record)
