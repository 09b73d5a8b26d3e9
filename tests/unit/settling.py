"""Asking a channel until it has settled what it was asked: the dispatcher's way, in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from channels.base import AttemptOutcome, ChannelReply


async def until_settled(ask: Callable[[], Awaitable[ChannelReply]]) -> ChannelReply:
    """Ask until the channel answers SUCCEEDED (for 2 s at most). An abandoned request may
    still be on its way in on a loaded machine; until it lands the channel has no record of it,
    and asking again is how the dispatcher settles it too."""
    answer = await ask()
    for _ in range(40):
        if answer.outcome is AttemptOutcome.SUCCEEDED:
            break
        await asyncio.sleep(0.05)
        answer = await ask()
    return answer
