"""Outputs gathered per partition and handed to the producer as whole batches.

Producing message by message costs a future and a callback per message; a processed batch's
outputs are instead grouped by topic and partition (in their order) and sent as one Kafka batch
each, with one acknowledgement to wait for. Partitions are chosen exactly as the producer's
default partitioner chooses them, so a key lands where any other client would put it.

Records of a bundled type wait in their partition's open bundle; the bundle is sealed (wrapped
and encoded) at the flush, or earlier when another record goes to the same partition, so each
partition keeps the order in which its records were sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from events.records import AvroRecord
from streams.engine.bundles import Bundling

Destination = tuple[str, int]
MEMO_SIZE = 100_000
Encode = Callable[[AvroRecord], bytes]


class OutputBuffer:
    """The records a processor produced since its last flush, per destination partition."""

    def __init__(
        self, producer: AIOKafkaProducer, encode: Encode, bundlings: Sequence[Bundling] = ()
    ) -> None:
        self._producer = producer
        self._encode = encode
        self._bundlings = {bundling.record_type: bundling for bundling in bundlings}
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        # Keys recur (a payment's five snapshots, a merchant's every payment) and the hash is
        # pure Python, so recent choices are remembered; the memo is emptied when it grows.
        self._chosen: dict[tuple[str, bytes], int] = {}
        self._records: dict[Destination, list[tuple[bytes | None, bytes | None]]] = {}
        self._open: dict[Destination, tuple[Bundling, list[AvroRecord]]] = {}

    async def add_record(self, topic: str, key: bytes | None, record: AvroRecord) -> None:
        """Queue one record, encoded now or, when its type is bundled, at the bundle's seal."""
        bundling = self._bundlings.get(type(record))
        if bundling is None:
            await self.add(topic, key, self._encode(record))
            return
        destination = (topic, await self._partition_for(topic, key))
        self._open.setdefault(destination, (bundling, []))[1].append(record)

    async def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one encoded record; without ``partition`` it goes where its key hashes to."""
        if partition is None:
            partition = await self._partition_for(topic, key)
        destination = (topic, partition)
        if destination in self._open:
            self._seal(destination)
        self._records.setdefault(destination, []).append((key, value))

    async def flush(self) -> list[asyncio.Future[Any]]:
        """Hand every queued record to the producer; returns the acknowledgements to await."""
        for destination in list(self._open):
            self._seal(destination)
        records, self._records = self._records, {}
        acks = []
        for (topic, partition), pairs in records.items():
            acks += await self._send(topic, partition, pairs)
        return acks

    def _seal(self, destination: Destination) -> None:
        bundling, records = self._open.pop(destination)
        queued = self._records.setdefault(destination, [])
        queued += [(None, self._encode(bundle)) for bundle in bundling.bundles(records)]

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
        if key is not None and (topic, key) in self._chosen:
            return self._chosen[topic, key]
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = partitions
        chosen: int = self._partitioner(key, partitions, partitions)
        if key is not None:
            if len(self._chosen) >= MEMO_SIZE:
                self._chosen.clear()
            self._chosen[topic, key] = chosen
        return chosen
