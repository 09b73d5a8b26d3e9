"""Settling what a channel has not said clearly: the loop every dispatch shares.

A charge, a refund or a payout answered PENDING, UNKNOWN or with a code that does not say
whether money moved is never guessed at. The dispatch waits for the channel's notification and,
until one comes, asks again with backing-off pauses; the asking (a status query, or the same
request again under our id, which the channel answers from its record) is each dispatch's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from channels.base import AttemptOutcome, ChannelReply, ErrorClass, ErrorCodeMap
from events.records import AvroRecord
from streams.dispatch.notices import NoticeBoard

Emit = Callable[[AvroRecord], object]
Ask = Callable[[], Awaitable[ChannelReply]]


@dataclass(frozen=True)
class SettleTiming:
    """How patiently an unclear answer is settled."""

    first_query_s: float = 0.5  # wait this long for a notification before the first query
    longest_query_s: float = 30.0  # queries back off to this interval, never further


PATIENT = SettleTiming()


@dataclass(frozen=True)
class Settled:
    """The channel's clear answer, and what gave it: reply, notification or query."""

    reply: ChannelReply
    settled_by: str


def clear_failure(codes: ErrorCodeMap, reply: ChannelReply) -> bool:
    """A failure whose code says nothing moved (any class but UNKNOWN)."""
    failed = reply.outcome is AttemptOutcome.FAILED
    return failed and codes.classify(reply.code) is not ErrorClass.UNKNOWN


async def settle(
    first: ChannelReply,
    ask: Ask,
    clear: Callable[[ChannelReply], bool],
    notices: NoticeBoard,
    subject: tuple[str, str],
    timing: SettleTiming,
) -> Settled:
    """Ask until the channel answers SUCCEEDED or a ``clear`` failure. ``subject`` is the
    (payment, refund or payout id; channel) a notification about it names."""
    reply, settled_by = first, "reply"
    wait = timing.first_query_s
    while True:
        if reply.outcome is AttemptOutcome.SUCCEEDED or clear(reply):
            return Settled(reply, settled_by)
        notice = await notices.wait(*subject, wait)
        if notice is not None and notice.outcome == AttemptOutcome.SUCCEEDED:
            return Settled(
                ChannelReply(AttemptOutcome.SUCCEEDED, notice.channel_ref), "notification"
            )
        reply, settled_by = await ask(), "query"
        wait = min(wait * 2, timing.longest_query_s)
