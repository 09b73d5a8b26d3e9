"""The feature snapshots' table: layouts written once, rows of values, bad tables refused."""

from __future__ import annotations

import io

import fastavro
import pytest

from events.feature_tables import FeatureSnapshotTable
from events.risk_records import FeatureSnapshot, FeatureSnapshotBatch
from events.schema_store import ManifestSchemas
from events.wire import AvroBodyError, EventCodec, frame


@pytest.fixture(scope="module")
def manifest() -> ManifestSchemas:
    return ManifestSchemas()


@pytest.fixture(scope="module")
def codec(manifest: ManifestSchemas) -> EventCodec:
    return EventCodec(manifest)


def _device(payment: int, payments: int, first_seen: bool) -> FeatureSnapshot:
    return FeatureSnapshot(
        payment_id=f"p-{payment}",
        dimension="device",
        features={"first_seen": first_seen, "payments_1m": payments, "amount_1m": 4_200},
    )


def _merchant(payment: int) -> FeatureSnapshot:
    features = {"present": True, "payments_1h": 1_000_000_000_000, "tier": "gold"}
    return FeatureSnapshot(payment_id=f"p-{payment}", dimension="merchant", features=features)


def _table_message(manifest: ManifestSchemas, datum: dict) -> bytes:
    schema = manifest.latest(FeatureSnapshotTable.subject)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, datum)
    return frame(schema.schema_id, body.getvalue())


def test_every_snapshot_comes_back_with_its_values_and_their_types(codec):
    snapshots = [_device(1, 3, False), _merchant(1), _device(2, 1, True), _merchant(2)]
    decoded = codec.decode(codec.encode(FeatureSnapshotTable(snapshots=snapshots)))
    assert decoded == FeatureSnapshotTable(snapshots=snapshots)
    assert [type(s.features["first_seen"]) for s in decoded.snapshots[::2]] == [bool, bool]
    assert decoded.snapshots[1].features["tier"] == "gold"


def test_each_layout_of_feature_names_travels_once(codec):
    snapshots = [_device(n, n, n == 0) for n in range(50)] + [_merchant(n) for n in range(50)]
    datum = FeatureSnapshotTable(snapshots=snapshots).to_avro()
    assert [layout["names"] for layout in datum["layouts"]] == [
        ["first_seen", "payments_1m", "amount_1m"],
        ["present", "payments_1h"],
    ]
    assert [row["layout"] for row in datum["rows"]] == [0] * 50 + [1] * 50


def test_a_table_is_far_smaller_than_the_same_snapshots_as_maps(codec):
    snapshots = [_device(n, n, False) for n in range(100)]
    table = codec.encode(FeatureSnapshotTable(snapshots=snapshots))
    maps = codec.encode(FeatureSnapshotBatch(snapshots=snapshots))
    assert len(table) < 0.7 * len(maps)


@pytest.mark.parametrize(
    ("layout", "values", "reason"),
    [
        (0, [1, 2], "2 values for a layout of 3"),
        (0, [2, 1, 7], "first_seen is a boolean, not 2"),
        (1, [0, 1, 7], "layout 1 of 1"),
    ],
)
def test_a_row_not_fitting_its_layout_is_a_body_error(manifest, codec, layout, values, reason):
    datum = FeatureSnapshotTable(snapshots=[_device(1, 1, False)]).to_avro()
    datum["rows"][0].update(layout=layout, values=values)
    with pytest.raises(AvroBodyError, match=reason):
        codec.decode(_table_message(manifest, datum))


def test_a_layout_marking_a_boolean_past_its_names_is_a_body_error(manifest, codec):
    datum = FeatureSnapshotTable(snapshots=[_device(1, 1, False)]).to_avro()
    datum["layouts"][0]["flags"] = [3]
    with pytest.raises(AvroBodyError, match="booleans at"):
        codec.decode(_table_message(manifest, datum))
