"""State stores: a processor's table, changelogged to a compacted topic and restored from it.

A store maps text keys to JSON values and lives in the processor's memory. Each key belongs to
the input partition whose message wrote it; its changelog record goes to the same partition of
the changelog topic, so the worker assigned an input partition restores exactly the keys that
partition's messages will ask about. Writes are collected and sent once per key per batch, the
newest value winning, so a key touched by many messages of one batch costs one record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from events.topics import TopicSpec
from streams.engine.kafka import plain_consumer, watermarks


class UnboundWrite(RuntimeError):
    """A store was written outside the handling of a message: no partition owns the key."""


@dataclass(slots=True)
class ChangelogRecord:
    """One changelog write: a key's newest value (None deletes it) in its partition."""

    partition: int
    key: bytes
    value: bytes | None


class ValueCodec(Protocol):
    """How a store's live values (objects a handler updates in place) become JSON and back."""

    def to_json(self, value: Any) -> Any:
        """A JSON-able form of ``value``."""
        ...

    def from_json(self, data: Any) -> Any:
        """The live value ``to_json`` produced ``data`` from."""
        ...


class PlainJson:
    """Values that are JSON-able as they are."""

    def to_json(self, value: Any) -> Any:
        """``value`` itself."""
        return value

    def from_json(self, data: Any) -> Any:
        """``data`` itself."""
        return data


class StateStore(MutableMapping[str, Any]):
    """A processor's table over the partitions this worker is assigned."""

    def __init__(self, changelog: TopicSpec, codec: ValueCodec | None = None) -> None:
        self.changelog = changelog
        self._codec = codec or PlainJson()
        self._values: dict[str, Any] = {}
        self._partition_of: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._deleted: dict[str, int] = {}
        self._bound: int | None = None

    def bind(self, partition: int | None) -> None:
        """Attribute the writes that follow to input ``partition`` (None: writes refused)."""
        self._bound = partition

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if self._bound is None:
            raise UnboundWrite(f"store {self.changelog.name} written outside a message")
        self._values[key] = value
        self._partition_of[key] = self._bound
        self._dirty.add(key)
        self._deleted.pop(key, None)

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        self._deleted[key] = self._partition_of.pop(key)
        self._dirty.discard(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def partitions(self) -> set[int]:
        """The input partitions whose keys this store holds."""
        return set(self._partition_of.values())

    def take_changes(self) -> list[ChangelogRecord]:
        """The changelog records of every write since the last call (values serialised now, so
        a value changed in place after it was set is written as it ends up)."""
        changes = [
            ChangelogRecord(self._partition_of[key], key.encode(), self._dumps(key))
            for key in self._dirty
        ]
        changes += [
            ChangelogRecord(partition, key.encode(), None)
            for key, partition in self._deleted.items()
        ]
        self._dirty.clear()
        self._deleted.clear()
        return changes

    def _dumps(self, key: str) -> bytes:
        # Integer keys become text, as the standard library's JSON would make them.
        return orjson.dumps(self._codec.to_json(self._values[key]), option=orjson.OPT_NON_STR_KEYS)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the keys of ``partitions`` (another worker owns them now)."""
        gone = set(partitions)
        for key in [k for k, p in self._partition_of.items() if p in gone]:
            del self._values[key]
            del self._partition_of[key]
            self._dirty.discard(key)

    def apply(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record read back while restoring ``partition``."""
        text = key.decode()
        if value is None:
            self._values.pop(text, None)
            self._partition_of.pop(text, None)
            return
        self._values[text] = self._codec.from_json(orjson.loads(value))
        self._partition_of[text] = partition


def restore(bootstrap: str, store: StateStore, partitions: Iterable[int]) -> int:
    """Read ``partitions`` of the store's changelog from the start to their current end into the
    store; returns the number of records read."""
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    consumer = plain_consumer(bootstrap)
    try:
        name = store.changelog.name
        ends = {p: watermarks(consumer, TopicPartition(name, p), 30.0)[1] for p in wanted}
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in wanted])
        return _read_until(consumer, store, ends)
    finally:
        consumer.close()


def _read_until(consumer: Consumer, store: StateStore, ends: dict[int, int]) -> int:
    name, read = store.changelog.name, 0
    remaining = {partition for partition, end in ends.items() if end > 0}
    while remaining:
        for message in consumer.consume(10_000, 0.2):
            if message.error() is not None:
                raise KafkaException(message.error())
            partition, offset = message.partition(), message.offset()
            if offset is not None and partition is not None and offset < ends[partition]:
                store.apply(partition, message.key() or b"", message.value())
                read += 1
        # Compaction leaves holes in the offsets: a partition is done at its end position.
        positions = consumer.position([TopicPartition(name, p) for p in remaining])
        remaining -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    return read
