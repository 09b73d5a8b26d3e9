"""The offset watch: an alarm for a consumer that moved past a message without delivering it."""

from __future__ import annotations

import logging

from events.dead_letters import ConsumedMessage

log = logging.getLogger(__name__)


class OffsetWatch:
    """Raises the alarm when a partition's delivered offsets jump: a message went unprocessed.

    Our producers are not transactional and our input topics are not compacted, so consecutive
    messages of a partition have consecutive offsets; a jump means the consumer skipped one.
    """

    def __init__(self, processor: str) -> None:
        self._processor = processor
        self._next: dict[tuple[str, int], int] = {}

    def check(self, message: ConsumedMessage) -> None:
        """Note ``message``; log an error when offsets were skipped before it."""
        where = (message.topic, message.partition)
        expected = self._next.get(where)
        if expected is not None and message.offset > expected:
            log.error(
                "%s skipped offsets %d-%d of %s[%d]",
                self._processor,
                expected,
                message.offset - 1,
                message.topic,
                message.partition,
            )
        self._next[where] = message.offset + 1

    def forget(self) -> None:
        """Start afresh after a rebalance: another worker may have moved a partition on."""
        self._next.clear()
