"""Outputs gathered per partition and handed to the producer as whole batches.

Producing message by message costs a future and a callback per message; a processed batch's
outputs are instead grouped by topic and partition (in their order) and sent as one Kafka batch
each, with one acknowledgement to wait for. Partitions are chosen exactly as the producer's
default partitioner chooses them, so a key lands where any other client would put it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

Destination = tuple[str, int]


class OutputBuffer:
    """The records a processor produced since its last flush, per destination partition."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._records: dict[Destination, list[tuple[bytes | None, bytes | None]]] = {}

    async def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one record; without ``partition`` it goes where its key hashes to."""
        if partition is None:
            partition = await self._partition_for(topic, key)
        self._records.setdefault((topic, partition), []).append((key, value))

    async def flush(self) -> list[asyncio.Future[Any]]:
        """Hand every queued record to the producer; returns the acknowledgements to await."""
        records, self._records = self._records, {}
        acks = []
        for (topic, partition), pairs in records.items():
            acks += await self._send(topic, partition, pairs)
        return acks

    async def _send(
        self, topic: str, partition: int, pairs: list[tuple[bytes | None, bytes | None]]
    ) -> list[asyncio.Future[Any]]:
        acks, batch = [], None
        for key, value in pairs:
            if batch is not None and batch.append(key=key, value=value, timestamp=None):
                continue
            if batch is not None:  # full: it goes, and a new one starts with this record
                acks.append(await self._producer.send_batch(batch, topic, partition=partition))
            batch = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                # Larger than a batch: it goes on its own, still in order.
                acks.append(await self._producer.send(topic, value, key=key, partition=partition))
                batch = None
        if batch is not None:
            acks.append(await self._producer.send_batch(batch, topic, partition=partition))
        return acks

    async def _partition_for(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = partitions
        chosen: int = self._partitioner(key, partitions, partitions)
        return chosen
