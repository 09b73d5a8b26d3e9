"""The worker's Kafka clients: librdkafka's, whose protocol work runs in C threads.

A stream worker spends most of its time between records in the client: encoding requests,
decoding fetch responses, building batches. librdkafka does all of that in C, off the
interpreter lock, so the worker's Python thread keeps to the records themselves.

- ``ProducerLink``: the idempotent producer, partitioning keys as every Kafka client does
  (murmur2), and remembering the first delivery that failed so nothing is committed past it.
  Records nobody waits for (the feature store's changelog, say) go through a second producer
  that lets them linger and sends them in larger batches.
- ``group_consumer`` and ``plain_consumer``: consumers with the engine's settings.
- ``Delivered``: a consumed record as plain attributes.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

log = logging.getLogger(__name__)
T = TypeVar("T")
CommitAnswer = Callable[[KafkaError | None, list[TopicPartition]], None]

# Outputs are handed over as whole batches already; a longer linger would only add latency.
LINGER_MS = 0.5
# For records no payment waits for. The client sends each partition's records as a request of
# their own, and the broker's cost is mostly per request: lingering turns a worker's hundreds
# of small changelog requests a second into a few large ones.
UNHURRIED_LINGER_MS = 20.0
# A busy worker's group fetch waits up to this long for data to gather rather than answering
# each small write at once: a fetch names every input partition and costs the broker about the
# same however little it returns. It adds at most this much to each hop.
FETCH_WAIT_MS = 2
FETCH_MIN_BYTES = 64 * 1024


class DeliveryFailed(RuntimeError):
    """The broker refused or lost a record; the input that produced it must be replayed."""


# Not frozen: one is built per consumed message, and a frozen init costs four times as much.
@dataclass(slots=True)
class Delivered:
    """One consumed record (read it, never change it)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, message: Message) -> Delivered:
        """The record a librdkafka message carries."""
        # A message that carries a record (not an error) always has a partition and offset.
        return cls(
            message.topic(),  # type: ignore[arg-type]
            message.partition(),  # type: ignore[arg-type]
            message.offset(),  # type: ignore[arg-type]
            message.timestamp()[1],
            message.key(),
            message.value(),
        )


class ProducerLink:
    """The idempotent producer of a worker, shared by its processors.

    Records for ``unhurried`` topics go through a second client that lingers
    ``unhurried_linger_ms``. A topic always goes through the same client, so each partition
    keeps its order; marks and failures cover both.
    """

    def __init__(
        self,
        bootstrap: str,
        linger_ms: float = LINGER_MS,
        unhurried: Collection[str] = (),
        unhurried_linger_ms: float = UNHURRIED_LINGER_MS,
    ) -> None:
        self._failure: KafkaError | None = None
        # Records not yet acknowledged, per mark: ``mark`` closes one and opens the next.
        self._unacked: dict[int, int] = {}
        self._mark = 0
        self._on_delivery = functools.partial(self._delivered, self._mark)
        self._producer = Producer(_producer_settings(bootstrap, linger_ms))
        self._clients = [self._producer]
        self._client_of: dict[str, Producer] = {}
        if unhurried:
            batching = Producer(_producer_settings(bootstrap, unhurried_linger_ms))
            self._clients.append(batching)
            self._client_of = dict.fromkeys(unhurried, batching)

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one record; waits for room when the local queue is full."""
        client = self._client_of.get(topic, self._producer)
        while True:
            try:
                if partition is None:
                    client.produce(topic, value, key, on_delivery=self._on_delivery)
                else:
                    client.produce(topic, value, key, partition, on_delivery=self._on_delivery)
                break
            except BufferError:
                client.poll(0.05)
        self._unacked[self._mark] = self._unacked.get(self._mark, 0) + 1

    def mark(self) -> int:
        """Close the current mark and return it; records produced from now on get the next."""
        closed, self._mark = self._mark, self._mark + 1
        self._on_delivery = functools.partial(self._delivered, self._mark)
        return closed

    def acknowledged(self, mark: int) -> bool:
        """Whether every record produced before ``mark`` closed is acknowledged, without waiting;
        raises DeliveryFailed once any record was refused."""
        self.serve()
        self._check()
        return all(open_mark > mark for open_mark in self._unacked)

    def serve(self) -> None:
        """Run the delivery reports that have arrived (cheap; call it once per batch)."""
        for client in self._clients:
            client.poll(0)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raises DeliveryFailed otherwise."""
        deadline = time.monotonic() + timeout
        left = sum(client.flush(max(deadline - time.monotonic(), 0)) for client in self._clients)
        self._check()
        if left:
            raise DeliveryFailed(f"{left} records not acknowledged within {timeout:.0f} s")

    def partitions_of(self, topic: str) -> list[int]:
        """The partition numbers of ``topic``, from the cluster's metadata."""

        def ask() -> list[int]:
            found = self._producer.list_topics(topic, timeout=10).topics[topic]
            if found.error is not None or not found.partitions:
                raise KafkaException(found.error)
            return sorted(found.partitions)

        return _asked_until_answered(ask, 10.0)

    def _check(self) -> None:
        if self._failure is not None:
            raise DeliveryFailed(f"the broker refused a record: {self._failure}")

    def _delivered(self, mark: int, error: KafkaError | None, message: Message) -> None:
        left = self._unacked[mark] - 1
        if left:
            self._unacked[mark] = left
        else:
            del self._unacked[mark]
        if error is not None and self._failure is None:
            log.error("record to %s not delivered: %s", message.topic(), error)
            self._failure = error


def _producer_settings(bootstrap: str, linger_ms: float) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        # The Java client's partitioner: a key lands where every other client puts it.
        "partitioner": "murmur2_random",
    }


def watermarks(consumer: Consumer, partition: TopicPartition, timeout: float) -> tuple[int, int]:
    """(low, high) offsets of ``partition``, asked of the broker."""

    def ask() -> tuple[int, int]:
        low, high = consumer.get_watermark_offsets(partition, timeout)
        return low, high

    return _asked_until_answered(ask, timeout)


def _asked_until_answered(ask: Callable[[], T], timeout: float) -> T:
    """What ``ask`` answers, asked again while it raises KafkaException.

    A topic created a moment ago may be missing from the metadata or have no leader yet; after
    ``timeout`` seconds the broker's last refusal is raised.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ask()
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def group_consumer(
    bootstrap: str, group_id: str, session_timeout_ms: int, on_commit: CommitAnswer
) -> Consumer:
    """A consumer-group member that commits by hand and starts new groups at the beginning;
    ``on_commit`` hears the broker's answer to every commit."""
    return Consumer(
        {
            **_common(bootstrap),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(session_timeout_ms // 5, 500),
            # Partition p of every input comes to the same member: inputs stay co-partitioned.
            "partition.assignment.strategy": "range",
            "on_commit": on_commit,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            "fetch.min.bytes": FETCH_MIN_BYTES,
        }
    )


def plain_consumer(bootstrap: str) -> Consumer:
    """A consumer outside any group, for partitions it assigns itself."""
    # The client insists on a group id; a consumer that only assigns never joins that group.
    return Consumer(
        {**_common(bootstrap), "group.id": "paystream.unjoined", "enable.auto.commit": False}
    )


def _common(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "enable.partition.eof": False}
