"""A state store's changelog on the real broker: what one worker wrote, another restores."""

from __future__ import annotations

import pytest

from streams.engine.kafka import ProducerLink
from streams.engine.store import StateStore, restore

pytestmark = pytest.mark.e2e


def _log(bootstrap: str, store: StateStore) -> None:
    producer = ProducerLink(bootstrap)
    for change in store.take_changes():
        producer.produce(store.changelog.name, change.key, change.value, change.partition)
    producer.settle()


def test_a_restored_store_equals_the_one_that_wrote_the_changelog(
    catalogue_factory, kafka_bootstrap
):
    changelog = catalogue_factory().intake_keys
    written = StateStore(changelog)
    for batch in range(3):  # several batches: the newest value of each key must win
        for number in range(40):
            written.bind(number % changelog.partitions)
            written[f"key-{number}"] = {"batch": batch, "number": number}
        written.bind(1)
        del written["key-1"]
        _log(kafka_bootstrap, written)

    restored = StateStore(changelog)
    count = restore(kafka_bootstrap, restored, range(changelog.partitions))

    assert dict(restored) == dict(written)
    assert count == 3 * 40  # each batch logged 39 values and 1 tombstone; all read back once


def test_restoring_some_partitions_brings_back_only_their_keys(catalogue_factory, kafka_bootstrap):
    changelog = catalogue_factory().intake_keys
    written = StateStore(changelog)
    for number in range(20):
        written.bind(number % 4)
        written[f"key-{number}"] = number
    _log(kafka_bootstrap, written)

    restored = StateStore(changelog)
    restore(kafka_bootstrap, restored, [1, 3])

    assert dict(restored) == {f"key-{n}": n for n in range(20) if n % 4 in (1, 3)}
    assert restored.partitions() == {1, 3}
