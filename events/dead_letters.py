"""Building dead letters: the original message, whole, with where it came from and why."""

from __future__ import annotations

from typing import Protocol

from events.identity import derived_id
from events.records import DeadLetter, utc_now
from events.wire import DecodeError


def dead_letter_for(
    *,
    processor: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    error: Exception,
) -> DeadLetter:
    """A DeadLetter for the message at ``topic``/``partition``/``offset`` that ``error`` stopped.

    The id is derived from the log position, so dead-lettering the same message again after a
    crash yields the same id.
    """
    kind = error.kind if isinstance(error, DecodeError) else type(error).__name__
    return DeadLetter(
        dead_letter_id=derived_id(topic, partition, offset, "dead-letter"),
        failed_at=utc_now(),
        processor=processor,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key,
        payload=payload or b"",
        error_type=kind,
        reason=str(error),
    )


class ConsumedMessage(Protocol):
    """What a consumed record carries about where they came from."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def dead_letter_for_message(
    processor: str, message: ConsumedMessage, error: Exception
) -> DeadLetter:
    """A DeadLetter for a consumed ``message`` (raw key and value) that ``error`` stopped."""
    return dead_letter_for(
        processor=processor,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        payload=message.value,
        error=error,
    )
