"""Bundles: many small records to one partition travel as one record.

A processor that fans each input out into several small records (a payment into one feature
request per dimension) would pay Kafka's per-record cost for each. A ``Bundling`` names a record
type whose outputs are gathered per destination partition, which is chosen from each record's
key exactly as for a single record, and sent at each flush as one bundle record (in order, at
most ``limit`` per bundle). The reader takes the bundle apart; ``position`` numbers its items
so that replay detection by offset still tells each item apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from events.records import AvroRecord

# Items a bundle may hold: positions leave room for this many per offset.
MAX_BUNDLE = 1024


@dataclass(frozen=True)
class Bundling:
    """Outputs of ``record_type`` are sent ``limit`` at a time, wrapped by ``wrap``."""

    record_type: type[AvroRecord]
    wrap: Callable[[Sequence[AvroRecord]], AvroRecord]
    limit: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.limit <= MAX_BUNDLE:
            raise ValueError(f"a bundle holds 1 to {MAX_BUNDLE} records, not {self.limit}")

    def bundles(self, records: Sequence[AvroRecord]) -> list[AvroRecord]:
        """``records`` wrapped, in order, ``limit`` at a time."""
        return [
            self.wrap(records[start : start + self.limit])
            for start in range(0, len(records), self.limit)
        ]


def position(offset: int, index: int = 0) -> int:
    """A number for item ``index`` of the record at ``offset`` that grows along the partition,
    so a redelivered item compares as not newer than what was applied."""
    if not 0 <= index < MAX_BUNDLE:
        raise ValueError(f"item {index} is outside a bundle of at most {MAX_BUNDLE}")
    return offset * MAX_BUNDLE + index
