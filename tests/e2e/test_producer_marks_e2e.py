"""Producer marks on the real broker: a processor commits a batch's positions only once every
record produced before the batch's mark closed is acknowledged, and never waits to learn it."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.engine.kafka import DeliveryFailed, ProducerLink, plain_consumer, watermarks

pytestmark = pytest.mark.e2e


def _eventually(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_mark_is_acknowledged_once_its_records_are(catalogue_factory, kafka_bootstrap):
    topic = catalogue_factory().commands.name
    producer = ProducerLink(kafka_bootstrap, linger_ms=200)
    for number in range(50):
        producer.produce(topic, f"k{number}".encode(), b"v")
    first = producer.mark()
    # Held back by the linger: nothing has been sent, so nothing can be acknowledged yet.
    assert not producer.acknowledged(first)
    assert _eventually(lambda: producer.acknowledged(first))
    producer.produce(topic, b"late", b"v")
    second = producer.mark()
    assert second == first + 1
    assert producer.acknowledged(first)  # a later record does not hold an earlier mark back
    assert _eventually(lambda: producer.acknowledged(second))


def test_unhurried_records_linger_without_holding_back_the_others(
    catalogue_factory, kafka_bootstrap
):
    topics = catalogue_factory()
    prompt, slow = topics.events.name, topics.risk_health.name
    producer = ProducerLink(kafka_bootstrap, unhurried=[slow], unhurried_linger_ms=3_000)
    reader = plain_consumer(kafka_bootstrap)

    def written(topic: str) -> int:
        return watermarks(reader, TopicPartition(topic, 0), 10.0)[1]

    for number in range(20):
        producer.produce(slow, b"k%d" % number, str(number).encode(), partition=0)
        producer.produce(prompt, None, str(number).encode(), partition=0)
    mark = producer.mark()
    # The prompt records are on the broker while the unhurried ones still linger, and the mark
    # waits for both.
    assert _eventually(lambda: written(prompt) == 20, seconds=2.0)
    assert written(slow) == 0
    assert not producer.acknowledged(mark)
    assert _eventually(lambda: producer.acknowledged(mark))
    assert written(slow) == 20
    reader.close()


def _small_topic(bootstrap: str) -> str:
    """A topic whose broker refuses records over 1,000 bytes (the client would send them)."""
    name = f"marks-{uuid.uuid4().hex[:8]}"
    config = {"max.message.bytes": "1000"}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(timeout=30)
    return name


def test_a_refused_record_fails_every_later_question(kafka_bootstrap):
    topic = _small_topic(kafka_bootstrap)
    producer = ProducerLink(kafka_bootstrap)
    producer.produce(topic, b"fine", b"v")
    producer.produce(topic, b"huge", b"x" * 5_000)
    mark = producer.mark()
    with pytest.raises(DeliveryFailed, match=r"MSG_SIZE_TOO_LARGE|too large"):
        _eventually(lambda: producer.acknowledged(mark))
    producer.produce(topic, b"after", b"v")
    with pytest.raises(DeliveryFailed):
        producer.acknowledged(producer.mark())
