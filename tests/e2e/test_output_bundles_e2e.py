"""Bundled outputs on the real broker: each partition gets its records in order, fewer of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from events.records import AvroRecord
from events.risk_records import FeatureRelease, FeatureRequest, FeatureRequestBatch
from events.schema_store import ManifestSchemas
from events.wire import EventCodec
from streams.engine.bundles import Bundling
from streams.engine.kafka import ProducerLink
from streams.engine.output import OutputBuffer
from tests.unit.samples import feature_release, feature_request, request_bundle

pytestmark = pytest.mark.e2e
CODEC = EventCodec(ManifestSchemas())


async def _read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[AvroRecord]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        read: dict[int, list[AvroRecord]] = {p: [] for p in range(partitions)}
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                read[tp.partition] += [CODEC.decode(m.value) for m in messages]
        return read
    finally:
        await consumer.stop()


async def test_bundles_keep_each_partitions_order_and_fit_their_limit(
    catalogue_factory, kafka_bootstrap
):
    topic = catalogue_factory().risk_features
    producer = ProducerLink(kafka_bootstrap)
    buffer = OutputBuffer(
        producer, CODEC.encode, [Bundling(FeatureRequest, request_bundle, limit=4)]
    )
    requests = [feature_request(n) for n in range(30)]
    release = feature_release(5)
    for request in requests[:10]:
        buffer.add_record(topic.name, b"user:" + request.value.encode(), request)
    buffer.add_record(topic.name, b"user:u5", release)  # not bundled: seals u5's
    for request in requests[10:]:
        buffer.add_record(topic.name, b"user:" + request.value.encode(), request)
    buffer.flush()
    producer.settle()

    read = await _read_all(kafka_bootstrap, topic.name, topic.partitions)

    sent: list[FeatureRequest | FeatureRelease] = [*requests[:10], release, *requests[10:]]
    expected = _by_key_partition(sent, topic.partitions)
    for partition in range(topic.partitions):
        unbundled = [
            item
            for record in read[partition]
            for item in (record.requests if isinstance(record, FeatureRequestBatch) else [record])
        ]
        assert unbundled == expected[partition]
        bundles = [r for r in read[partition] if isinstance(r, FeatureRequestBatch)]
        assert all(1 <= len(bundle.requests) <= 4 for bundle in bundles)
    assert sum(len(records) for records in read.values()) < len(sent) / 2


async def test_keyed_records_left_to_the_producer_land_where_every_client_puts_them(
    catalogue_factory, kafka_bootstrap
):
    topic = catalogue_factory().events
    producer = ProducerLink(kafka_bootstrap)
    buffer = OutputBuffer(producer, CODEC.encode)
    releases = [dataclasses.replace(feature_release(n), value=f"u{n % 7}") for n in range(60)]
    for release in releases:
        buffer.add_record(topic.name, f"user:{release.value}".encode(), release)
    buffer.flush()
    producer.settle()

    read = await _read_all(kafka_bootstrap, topic.name, topic.partitions)

    assert read == _by_key_partition(releases, topic.partitions)


def _by_key_partition(
    records: Sequence[FeatureRequest | FeatureRelease], count: int
) -> dict[int, list[AvroRecord]]:
    """``records`` in the partitions every Kafka client puts their 'user:<value>' keys in."""
    partitions = list(range(count))
    placed: dict[int, list[AvroRecord]] = {p: [] for p in partitions}
    for record in records:
        key = f"user:{record.value}".encode()
        placed[DefaultPartitioner()(key, partitions, partitions)].append(record)
    return placed
