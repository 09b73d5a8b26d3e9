"""Where channel notifications meet the dispatches waiting for them.

A notification can arrive before the dispatch that waits for it has asked (the channel
answered the notification before its reply to the charge came back): it is kept until asked
for, for a while, so no result is missed and none waits for a query it did not need. Most kept
notices are never asked for (their payments are settled already: repeats, late ones), so
their number is capped, the oldest going first; a dispatch that misses one asks the channel.
"""

from __future__ import annotations

import asyncio
import time

from events.routing_records import ChannelNotified

Slot = tuple[str, str]  # (payment id, or our refund or payout id; channel)


class NoticeBoard:
    """Notifications by payment (or refund) and channel, handed to whoever waits for them."""

    def __init__(self, keep_seconds: float = 600.0, most_kept: int = 50_000) -> None:
        self._keep_seconds = keep_seconds
        self._most_kept = most_kept
        self._waiting: dict[Slot, asyncio.Future[ChannelNotified]] = {}
        self._early: dict[Slot, tuple[float, ChannelNotified]] = {}

    def post(self, notice: ChannelNotified) -> None:
        """A notification came in: wake its waiter or keep it until one asks."""
        # A refund's or a payout's notice names our refund or payout id in ``refund_id``.
        named = notice.kind in ("REFUND", "PAYOUT") and notice.refund_id
        subject = notice.refund_id if named else None
        slot = (subject or notice.payment_id, notice.channel)
        waiter = self._waiting.pop(slot, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(notice)
            return
        self._early.pop(slot, None)  # a repeat moves to the back, as the newest
        self._early[slot] = (time.monotonic(), notice)
        self._drop_stale()

    async def wait(self, subject: str, channel: str, seconds: float) -> ChannelNotified | None:
        """The notification about ``subject`` (a payment id, or a refund id) on this channel, or
        None after ``seconds``."""
        slot = (subject, channel)
        early = self._early.pop(slot, None)
        if early is not None:
            return early[1]
        waiter: asyncio.Future[ChannelNotified] = asyncio.get_running_loop().create_future()
        self._waiting[slot] = waiter
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), seconds)
        except TimeoutError:
            return None
        finally:
            if self._waiting.get(slot) is waiter:
                del self._waiting[slot]

    def _drop_stale(self) -> None:
        # Kept in arrival order: the stale and the surplus are at the front.
        oldest = time.monotonic() - self._keep_seconds
        while self._early:
            slot, (at, _) = next(iter(self._early.items()))
            if at >= oldest and len(self._early) <= self._most_kept:
                return
            del self._early[slot]
