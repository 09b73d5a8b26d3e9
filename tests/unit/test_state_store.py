"""The state store's bookkeeping: which partition owns a key, what goes to the changelog."""

from __future__ import annotations

import orjson
import pytest

from events.topics import TopicCatalogue
from streams.engine.store import ChangelogRecord, StateStore, UnboundWrite
from streams.risk.aftercare import HealthEntries
from streams.risk.feature_store import FeatureEntries
from streams.risk.health_windows import HealthWindows
from streams.risk.velocity import DimensionState, Observation

CHANGELOG = TopicCatalogue("unit").intake_keys


def store_with(**keys_by_partition: int) -> StateStore:
    store = StateStore(CHANGELOG)
    for key, partition in keys_by_partition.items():
        store.bind(partition)
        store[key] = {"key": key}
    store.bind(None)
    return store


def test_a_write_outside_a_message_is_refused():
    store = StateStore(CHANGELOG)
    with pytest.raises(UnboundWrite):
        store["k"] = 1


def test_each_key_is_logged_once_per_batch_with_its_newest_value_in_its_partition():
    store = StateStore(CHANGELOG)
    store.bind(2)
    store["k"] = {"n": 1}
    store["k"] = {"n": 2}
    store["k"]["n"] = 3  # changed in place after the write: logged as it ends up
    assert store.take_changes() == [ChangelogRecord(2, b"k", b'{"n":3}')]
    assert store.take_changes() == []


def test_a_deleted_key_is_logged_as_a_tombstone_in_the_partition_that_wrote_it():
    store = store_with(a=1)
    store.take_changes()
    store.bind(3)
    del store["a"]
    assert store.take_changes() == [ChangelogRecord(1, b"a", None)]
    assert "a" not in store


def test_dropping_partitions_forgets_only_their_keys():
    store = store_with(a=0, b=1, c=1, d=2)
    store.drop([1])
    assert sorted(store) == ["a", "d"]
    assert store.partitions() == {0, 2}


def test_applying_the_changelog_rebuilds_the_store():
    written = store_with(a=0, b=1)
    written.bind(1)
    del written["b"]
    restored = StateStore(CHANGELOG)
    for change in written.take_changes():
        restored.apply(change.partition, change.key, change.value)
    assert dict(restored) == {"a": {"key": "a"}}
    assert restored.partitions() == {0}


def test_feature_entries_survive_the_changelog_round_trip():
    state = DimensionState.new("device")
    observation = Observation(
        at_ms=1_700_000_000_000,
        amount_minor=500,
        currency="CNY",
        business_date="2023-11-15",
        partners={"user": "u-1", "account": "acc-1"},
    )
    features = state.observe(observation)
    entry = {"position": 7, "state": state, "last_payment": "p-1", "last_features": features}
    codec = FeatureEntries()
    data = orjson.loads(orjson.dumps(codec.to_json(entry), option=orjson.OPT_NON_STR_KEYS))
    assert codec.from_json(data) == entry


def test_health_entries_survive_the_changelog_round_trip():
    health = HealthWindows.new()
    health.record("payments", 1_700_000_000_000)
    health.record("refunds", 1_700_000_060_000)
    entry = {"offset": 3, "health": health, "active": ["refund-ratio"]}
    codec = HealthEntries()
    data = orjson.loads(orjson.dumps(codec.to_json(entry), option=orjson.OPT_NON_STR_KEYS))
    assert codec.from_json(data) == entry


def test_entries_changelogged_in_the_dict_layout_still_restore():
    """Changelogs written before entries became rows hold dicts; a restore reads both."""
    state = DimensionState.new("user")
    state.observe(Observation(1_700_000_000_000, 500, "CNY", "2023-11-15", {"device": "d-1"}))
    entry = {"position": 7, "state": state, "last_payment": "p-1", "last_features": {}}
    old = orjson.loads(orjson.dumps({**entry, "state": state.to_dict()}))
    assert FeatureEntries().from_json(old) == entry
    health = HealthWindows.new()
    health.record("payments", 1_700_000_000_000)
    kept = {"offset": 3, "health": health, "active": []}
    old = orjson.loads(orjson.dumps({**kept, "health": health.to_dict()}))
    assert HealthEntries().from_json(old) == kept
