"""Keeping Python's cycle collector from stopping a worker for long.

The collector walks every object of a generation each time it collects it, and a worker's
stores hold millions of small long-lived objects (velocity windows, cases, health counters).
Left to itself it stops the worker for as long as a walk of what accumulated takes: 70-85 ms
for the young generation at a threshold of 200,000 objects, 0.7-0.85 s for a full collection
over half a million, measured at 1,000 payments/s; every payment in flight waits that long.

Those objects die by reference counting (nothing on the processing path builds cycles; a test
holds us to that), so the collector has no garbage to find among them. ``CollectorPacing``
moves the survivors of the last moments out of its sight (``gc.freeze``, which costs the same
whatever it moves), so each collection only walks what was allocated since.
"""

from __future__ import annotations

import gc
import time

FREEZE_INTERVAL = 0.1
# Young-generation collections between freezes happen only in bursts (a store restoring a
# partition); at the default 700 they would come every few payments.
YOUNG_THRESHOLD = 10_000


class CollectorPacing:
    """Freezes what survived every ``interval`` seconds; call ``tick`` once per loop."""

    def __init__(self, interval: float = FREEZE_INTERVAL) -> None:
        self._interval = interval
        self._next = 0.0
        gc.set_threshold(YOUNG_THRESHOLD, 10, 10)

    def tick(self) -> None:
        """Freeze the surviving objects when ``interval`` has passed since the last time."""
        now = time.monotonic()
        if now >= self._next:
            gc.freeze()
            self._next = now + self._interval
