"""The feature store's tables: rows as JSON, layouts written once, bad tables refused."""

from __future__ import annotations

import io

import fastavro
import orjson
import pytest

from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.risk_records import FeatureRequest, FeatureSnapshot, FeatureSnapshotBatch
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


def _request(payment: int, dimension: str) -> FeatureRequest:
    return FeatureRequest(
        payment_id=f"p-{payment}",
        dimension=dimension,
        value=f"{dimension}-{payment % 3}",
        at_ms=1_714_566_645_456 + payment,
        amount_minor=64_800,
        currency="CNY",
        business_date="2024-05-01",
        partners={"device": "d-9"} if dimension == "user" else {},
    )


def _message(manifest: ManifestSchemas, subject: str, datum: dict) -> bytes:
    schema = manifest.latest(subject)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, datum)
    return frame(schema.schema_id, body.getvalue())


def _snapshot_message(manifest: ManifestSchemas, layouts: list, rows: list) -> bytes:
    datum = {"layouts": layouts, "rows": orjson.dumps(rows)}
    return _message(manifest, FeatureSnapshotRows.subject, datum)


def test_every_snapshot_comes_back_with_its_values_and_their_types(codec):
    snapshots = [_device(1, 3, False), _merchant(1), _device(2, 1, True), _merchant(2)]
    decoded = codec.decode(codec.encode(FeatureSnapshotRows(snapshots=snapshots)))
    assert decoded == FeatureSnapshotRows(snapshots=snapshots)
    assert [type(s.features["first_seen"]) for s in decoded.snapshots[::2]] == [bool, bool]
    assert decoded.snapshots[1].features["tier"] == "gold"


def test_every_request_comes_back_as_it_was_sent(codec):
    requests = [_request(n, dimension) for n in range(20) for dimension in ("user", "ip")]
    decoded = codec.decode(codec.encode(FeatureRequestRows(requests=requests)))
    assert decoded == FeatureRequestRows(requests=requests)


def test_each_layout_of_feature_names_travels_once(codec):
    snapshots = [_device(n, n, n == 0) for n in range(50)] + [_merchant(n) for n in range(50)]
    datum = FeatureSnapshotRows(snapshots=snapshots).to_avro()
    assert datum["layouts"] == [
        ["first_seen", "payments_1m", "amount_1m"],
        ["present", "payments_1h", "tier"],
    ]
    assert [row[2] for row in orjson.loads(datum["rows"])] == [0] * 50 + [1] * 50


def test_a_table_is_far_smaller_than_the_same_snapshots_as_maps(codec):
    snapshots = [_device(n, n, False) for n in range(100)]
    table = codec.encode(FeatureSnapshotRows(snapshots=snapshots))
    maps = codec.encode(FeatureSnapshotBatch(snapshots=snapshots))
    assert len(table) < 0.7 * len(maps)


LAYOUT = ["first_seen", "payments_1m", "amount_1m"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["p-1", "device", 0], "has 3 values, not 4"),
        (["p-1", "device", 0, [True, 2]], r"\[True, 2\] for a layout of 3"),
        (["p-1", "device", 1, [False, 1, 7]], "layout 1 of 1"),
        (["p-1", "device", 0, [False, 1.5, 7]], "wrong type"),
        (["p-1", "device", 0, [False, [1], 7]], "wrong type"),
        (["p-1", None, 0, [False, 1, 7]], "wrong type"),
    ],
)
def test_a_snapshot_row_of_the_wrong_shape_is_a_body_error(manifest, codec, row, reason):
    with pytest.raises(AvroBodyError, match=reason):
        codec.decode(_snapshot_message(manifest, [LAYOUT], [row]))


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        (b"[[1,", "not JSON"),
        (b'{"rows": []}', "not a JSON array of arrays"),
        (b'[["p-1", "user", "u1", 1, 2, "CNY", "2024-05-01"]]', "has 7 values, not 8"),
        (b'[["p-1", "user", "u1", 1.5, 2, "CNY", "2024-05-01", {}]]', "wrong type"),
        (b'[["p-1", "user", "u1", 1, 2, "CNY", "2024-05-01", {"ip": 4}]]', "wrong type"),
    ],
)
def test_a_request_row_of_the_wrong_shape_is_a_body_error(manifest, codec, rows, reason):
    message = _message(manifest, FeatureRequestRows.subject, {"rows": rows})
    with pytest.raises(AvroBodyError, match=reason):
        codec.decode(message)
