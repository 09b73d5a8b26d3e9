"""The feature store's internal traffic as tables: rows of values, each a JSON array.

Every payment sends five feature requests to the feature store and gets five snapshots back,
so these records outnumber all others. Both stages are ours and read what they wrote, so the
rows travel compactly: an Avro record (the wire format of every topic) whose ``rows`` field
holds a JSON array with one positional array per request or snapshot. fastavro spends about a
third of a microsecond per value and a payment carries about a hundred here; the JSON library
writes and reads the same rows in a few microseconds.

Snapshots add layouts: each distinct list of feature names is written once and each row's
values follow its layout's order. Decoding checks every row's shape and value types; a table
that breaks them raises MalformedTable, which the codec reports as a body error (the message
is dead-lettered, never half-read).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

import orjson

from events.records import AvroRecord
from events.risk_records import FeatureRequest, FeatureSnapshot, FeatureValues

# Feature values are integers, booleans or text; JSON keeps the three apart.
FEATURE_VALUE_TYPES = frozenset({int, bool, str})


class MalformedTable(ValueError):
    """A table whose rows do not have the documented shape."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRequestRows(AvroRecord):
    """Internal: the feature requests of one processed batch bound for one feature partition."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureRequestRows"
    wire_fields: ClassVar[tuple[str, ...] | None] = ("rows",)

    requests: list[FeatureRequest]

    def to_avro(self) -> dict[str, Any]:
        """The requests as one JSON array of positional rows."""
        rows = [
            [
                r.payment_id,
                r.dimension,
                r.value,
                r.at_ms,
                r.amount_minor,
                r.currency,
                r.business_date,
                r.partners,
            ]
            for r in self.requests
        ]
        return {"rows": orjson.dumps(rows)}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """The requests again; raises MalformedTable for a row of the wrong shape."""
        return cls(requests=[_request(row) for row in _rows(datum["rows"])])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSnapshotRows(AvroRecord):
    """Internal: the feature snapshots of one processed batch bound for one case partition."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureSnapshotRows"
    wire_fields: ClassVar[tuple[str, ...] | None] = ("layouts", "rows")

    snapshots: list[FeatureSnapshot]

    def to_avro(self) -> dict[str, Any]:
        """The snapshots as layouts and rows, each layout written once."""
        layouts: dict[tuple[str, ...], int] = {}
        rows = [
            [
                snapshot.payment_id,
                snapshot.dimension,
                layouts.setdefault(tuple(snapshot.features), len(layouts)),
                list(snapshot.features.values()),
            ]
            for snapshot in self.snapshots
        ]
        return {"layouts": [list(names) for names in layouts], "rows": orjson.dumps(rows)}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """The snapshots again, each row's values named by its layout; raises MalformedTable."""
        layouts = [tuple(names) for names in datum["layouts"]]
        return cls(snapshots=[_snapshot(row, layouts) for row in _rows(datum["rows"])])


def _rows(body: bytes) -> list[list[Any]]:
    try:
        rows = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedTable(f"rows are not JSON: {error}") from error
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise MalformedTable("rows are not a JSON array of arrays")
    return rows


def _request(row: list[Any]) -> FeatureRequest:
    if len(row) != 8:
        raise MalformedTable(f"a request row has {len(row)} values, not 8")
    payment_id, dimension, value, at_ms, amount, currency, date, partners = row
    texts = (payment_id, dimension, value, currency, date)
    numbers_fit = type(at_ms) is int and type(amount) is int
    if not (numbers_fit and all(type(item) is str for item in texts) and _text_map(partners)):
        raise MalformedTable(f"request row {row!r} has a value of the wrong type")
    return FeatureRequest(
        payment_id=payment_id,
        dimension=dimension,
        value=value,
        at_ms=at_ms,
        amount_minor=amount,
        currency=currency,
        business_date=date,
        partners=partners,
    )


def _snapshot(row: list[Any], layouts: list[tuple[str, ...]]) -> FeatureSnapshot:
    if len(row) != 4:
        raise MalformedTable(f"a snapshot row has {len(row)} values, not 4")
    payment_id, dimension, layout, values = row
    if type(layout) is not int or not 0 <= layout < len(layouts):
        raise MalformedTable(f"row names layout {layout!r} of {len(layouts)}")
    names = layouts[layout]
    if type(values) is not list or len(values) != len(names):
        raise MalformedTable(f"a row of {values!r} for a layout of {len(names)} names")
    kinds = {type(payment_id), type(dimension)}
    if kinds != {str} or not set(map(type, values)) <= FEATURE_VALUE_TYPES:
        raise MalformedTable(f"snapshot row {row!r} has a value of the wrong type")
    features: FeatureValues = dict(zip(names, values, strict=True))
    return FeatureSnapshot(payment_id=payment_id, dimension=dimension, features=features)


def _text_map(value: Any) -> bool:
    return type(value) is dict and all(type(item) is str for item in value.values())
