"""How far a partition of the payment log is done, when its payments finish out of order.

Dispatches run side by side and a slow channel finishes late, so a partition's commit position
is its oldest unfinished routed payment: everything before it is done (its events
acknowledged), and a crash replays from there. Finished dispatches are replayed too, but the
channels answer a repeated order from their own records, so nothing is charged twice.
"""

from __future__ import annotations

import heapq


class PartitionProgress:
    """The offsets of one partition that are read, open (being dispatched) and finished."""

    def __init__(self) -> None:
        self._open: list[int] = []  # a heap of open offsets, finished ones removed lazily
        self._finished: set[int] = set()
        self._next = -1  # one past the newest offset read; -1 before the first

    def read(self, offset: int) -> None:
        """A message at ``offset`` was read (and, unless opened, needs nothing more)."""
        self._next = max(self._next, offset + 1)

    def opened(self, offset: int) -> None:
        """The message at ``offset`` started work that must finish before it is committed."""
        heapq.heappush(self._open, offset)
        self.read(offset)

    def finished(self, offset: int) -> None:
        """The work of ``offset`` is done and its output acknowledged."""
        self._finished.add(offset)
        while self._open and self._open[0] in self._finished:
            self._finished.discard(heapq.heappop(self._open))

    def position(self) -> int | None:
        """Where a restart should begin: the oldest open offset, else one past the newest read
        (None before anything was read)."""
        if self._open:
            return self._open[0]
        return self._next if self._next >= 0 else None

    @property
    def busy(self) -> int:
        """How many opened offsets are not finished yet."""
        return len(self._open) - len(self._finished)
