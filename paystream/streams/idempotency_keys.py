"""The intake's idempotency keys, kept in a Faust table and its changelog topic.

Faust's own ``table[key] = value`` writes the changelog record into the partition of the
stream's "current event", which a batched agent (``take_events``) does not set per record.
This store writes each change itself, into the partition of the command that made it, so the
key is restored with that partition when the partition moves to another worker.
"""

from __future__ import annotations

from typing import Any

from paystream.streams.intake import FirstUse


class ChangelogKeys:
    """Reads from the table's local store; each write is queued for the table's changelog."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.changelog_topic: str = table.changelog_topic.get_topic_name()
        self._pending: list[tuple[str, FirstUse]] = []

    def get(self, key: str, /) -> FirstUse | None:
        """The first use of ``key`` on the partitions this worker owns, or None."""
        value: FirstUse | None = self._table.data.get(key)
        return value

    def __setitem__(self, key: str, value: FirstUse, /) -> None:
        """Remember ``key`` locally now; its changelog record goes out with ``drain``."""
        self._table.data[key] = value
        self._pending.append((key, value))

    def drain(self) -> list[tuple[bytes, bytes]]:
        """The changelog records (key, value) written since the last drain, serialised with
        the table's own serializers, so recovery reads them back as the table wrote them."""
        pending, self._pending = self._pending, []
        table, serializers = self._table, self._table.app.serializers
        return [
            (
                serializers.dumps_key(table.key_type, key, serializer=table.key_serializer),
                serializers.dumps_value(table.value_type, value, serializer=table.value_serializer),
            )
            for key, value in pending
        ]
