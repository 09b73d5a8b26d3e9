"""Schema evolution rules: BACKWARD_TRANSITIVE, checked with Apache Avro's own resolver rules.

BACKWARD_TRANSITIVE means the newest schema can read data written with every earlier version,
which is what a log kept forever needs: today's code replays the first day's events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType


@dataclass(frozen=True)
class Incompatibility:
    """Why the newest schema of a subject cannot read what an older version wrote."""

    subject: str
    writer_label: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.subject}: cannot read {self.writer_label}: {'; '.join(self.problems)}"


def _parse(definition: dict[str, Any]) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(definition))


def read_problems(reader: dict[str, Any], writer: dict[str, Any]) -> tuple[str, ...]:
    """What stops ``reader`` from reading data written with ``writer``; empty when it can."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_parse(reader), _parse(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return ()
    # The checker reports the kinds and the places as two separate sets, so they are listed
    # side by side rather than paired up.
    kinds = sorted(str(kind.value) for kind in result.incompatibilities) or ["incompatible"]
    return (f"{', '.join(kinds)} (at {', '.join(sorted(result.locations))})",)


def backward_transitive_problems(
    subject: str,
    newest: dict[str, Any],
    earlier: dict[str, dict[str, Any]],
) -> list[Incompatibility]:
    """Every earlier version (label -> definition) that ``newest`` cannot read."""
    found = []
    for label, writer in earlier.items():
        problems = read_problems(newest, writer)
        if problems:
            found.append(Incompatibility(subject, label, problems))
    return found
