"""The feature store's answers as a table: each layout of feature names once, then rows of values.

A processed batch sends many snapshots of the same few dimensions to one case partition. As maps,
every snapshot repeats all of its feature names; as a table, each distinct list of names (a
layout) travels once and each snapshot is a row of integers in that order, which fastavro
writes and reads several times faster. Booleans travel as 0 and 1 at the positions their
layout marks; text values, which velocity features do not have, keep a small map per row.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from events.records import AvroRecord
from events.risk_records import FeatureSnapshot, FeatureValues

Layout = tuple[tuple[str, ...], tuple[int, ...]]


class MalformedTable(ValueError):
    """A table whose rows do not fit its layouts (the codec reports it as a body error)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSnapshotTable(AvroRecord):
    """Internal: the feature snapshots of one processed batch bound for one case partition."""

    subject: ClassVar[str] = "paystream.risk.internal.FeatureSnapshotTable"
    wire_fields: ClassVar[tuple[str, ...] | None] = ("layouts", "rows")

    snapshots: list[FeatureSnapshot]

    def to_avro(self) -> dict[str, Any]:
        """The snapshots as layouts and rows, each layout written once."""
        layouts: dict[Layout, int] = {}
        rows = []
        for snapshot in self.snapshots:
            names, values, flags, labels = _columns(snapshot.features)
            index = layouts.setdefault((names, flags), len(layouts))
            rows.append(
                {
                    "payment_id": snapshot.payment_id,
                    "dimension": snapshot.dimension,
                    "layout": index,
                    "values": values,
                    "labels": labels,
                }
            )
        written = [{"names": list(names), "flags": list(flags)} for names, flags in layouts]
        return {"layouts": written, "rows": rows}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """The snapshots again, each row's values named by its layout; raises MalformedTable."""
        layouts = [_layout(item) for item in datum["layouts"]]
        return cls(snapshots=[_snapshot(row, layouts) for row in datum["rows"]])


def _columns(
    features: FeatureValues,
) -> tuple[tuple[str, ...], list[int], tuple[int, ...], dict[str, str]]:
    """(names, values, boolean positions, text values) of one snapshot's features."""
    names: list[str] = []
    values: list[int] = []
    flags: list[int] = []
    labels: dict[str, str] = {}
    for name, value in features.items():
        # bool before int: a bool is an int to isinstance.
        if value is True or value is False:
            flags.append(len(values))
            values.append(int(value))
        elif isinstance(value, int):
            values.append(value)
        else:
            labels[name] = value
            continue
        names.append(name)
    return tuple(names), values, tuple(flags), labels


def _layout(item: dict[str, Any]) -> Layout:
    names, flags = tuple(item["names"]), tuple(item["flags"])
    if any(not 0 <= flag < len(names) for flag in flags):
        raise MalformedTable(f"a layout of {len(names)} names marks booleans at {list(flags)}")
    return names, flags


def _snapshot(row: dict[str, Any], layouts: list[Layout]) -> FeatureSnapshot:
    if not 0 <= row["layout"] < len(layouts):
        raise MalformedTable(f"row names layout {row['layout']} of {len(layouts)}")
    names, flags = layouts[row["layout"]]
    values: list[Any] = row["values"]
    if len(values) != len(names):
        raise MalformedTable(f"row of {len(values)} values for a layout of {len(names)} names")
    for position in flags:
        if values[position] not in (0, 1):
            raise MalformedTable(f"{names[position]} is a boolean, not {values[position]}")
        values[position] = values[position] == 1
    features: FeatureValues = dict(zip(names, values, strict=True))
    features.update(row["labels"])
    return FeatureSnapshot(
        payment_id=row["payment_id"], dimension=row["dimension"], features=features
    )
