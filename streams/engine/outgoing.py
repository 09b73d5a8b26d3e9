"""A record a processor wants written, with the topic and key it goes to."""

from __future__ import annotations

from dataclasses import dataclass

from events.records import AvroRecord


# Not frozen: a payment makes a dozen, and a frozen init costs four times as much.
@dataclass(slots=True)
class Outgoing:
    """One record to produce: the processor writes these after the handler changed its stores."""

    topic: str
    key: bytes
    record: AvroRecord
    # The record's encoding when the handler needed it already: it is not encoded twice.
    encoded: bytes | None = None
