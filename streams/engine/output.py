"""Outputs gathered per partition and handed to the producer at each flush, in order.

Records of a bundled type wait in their partition's open bundle; the bundle is sealed (wrapped
and encoded) at the flush, or earlier when another record goes to the same partition, so each
partition keeps the order in which its records were sent. Partitions are chosen exactly as
every Kafka client's default partitioner chooses them, so a key lands where any other client
would put it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiokafka.partitioner import DefaultPartitioner

from events.records import AvroRecord
from streams.engine.bundles import Bundling
from streams.engine.kafka import ProducerLink

Destination = tuple[str, int]
MEMO_SIZE = 100_000
Encode = Callable[[AvroRecord], bytes]


class OutputBuffer:
    """The records a processor produced since its last flush, per destination partition."""

    def __init__(
        self, producer: ProducerLink, encode: Encode, bundlings: Sequence[Bundling] = ()
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
        # Keyed records need no partition of ours unless their topic also gets records placed
        # by us (bundles, explicit partitions): the producer hashes their keys the same way, in
        # C. They go out first at each flush, which keeps every partition's order, since a
        # topic joins ``_placed`` before any placed record of it is queued.
        self._unplaced: list[tuple[str, bytes | None, bytes | None]] = []
        self._placed: set[str] = set()

    def add_record(self, topic: str, key: bytes | None, record: AvroRecord) -> None:
        """Queue one record, encoded now or, when its type is bundled, at the bundle's seal."""
        bundling = self._bundlings.get(type(record))
        if bundling is None:
            self.add(topic, key, self._encode(record))
            return
        self._placed.add(topic)
        destination = (topic, self._partition_for(topic, key))
        self._open.setdefault(destination, (bundling, []))[1].append(record)

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one encoded record; without ``partition`` it goes where its key hashes to."""
        if partition is None and key is not None and topic not in self._placed:
            self._unplaced.append((topic, key, value))
            return
        self._placed.add(topic)
        if partition is None:
            partition = self._partition_for(topic, key)
        destination = (topic, partition)
        if destination in self._open:
            self._seal(destination)
        self._records.setdefault(destination, []).append((key, value))

    def flush(self) -> None:
        """Hand every queued record to the producer, in each partition's order."""
        for destination in list(self._open):
            self._seal(destination)
        records, self._records = self._records, {}
        unplaced, self._unplaced = self._unplaced, []
        produce = self._producer.produce
        for topic, key, value in unplaced:
            produce(topic, key, value)
        for (topic, partition), pairs in records.items():
            for key, value in pairs:
                produce(topic, key, value, partition)

    def _seal(self, destination: Destination) -> None:
        bundling, records = self._open.pop(destination)
        queued = self._records.setdefault(destination, [])
        queued += [(None, self._encode(bundle)) for bundle in bundling.bundles(records)]

    def _partition_for(self, topic: str, key: bytes | None) -> int:
        if key is not None and (topic, key) in self._chosen:
            return self._chosen[topic, key]
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = self._producer.partitions_of(topic)
        chosen: int = self._partitioner(key, partitions, partitions)
        if key is not None:
            if len(self._chosen) >= MEMO_SIZE:
                self._chosen.clear()
            self._chosen[topic, key] = chosen
        return chosen
