"""The channels' asynchronous notifications, received over HTTP and recorded on the log.

Each channel posts to ``/notify/<channel>``. Its adapter verifies and decodes the notification
(a bad signature or an unreadable body is refused with the reason, in the channel's own
convention, so the channel sends it again); a good one becomes a ChannelNotified on the
payment log, and is acknowledged to the channel only once the broker has it. A crash before
that loses nothing: the channel re-sends. Repeats carry the same event id, and the dispatcher
acts on a payment's first settling notice only, so repeated or late notifications change
nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from channels.base import ChannelAdapter, ChannelNotice, NoticeAnswer, NoticeRefused
from events.identity import derived_id
from events.records import AvroRecord
from events.routing_records import ChannelNotified
from streams.engine.kafka import ProducerLink

log = logging.getLogger(__name__)
# Longest wait for the broker's acknowledgement before the channel is told to send again.
RECORD_TIMEOUT = 5.0


def notified_event(notice: ChannelNotice, body: bytes) -> ChannelNotified:
    """The log's record of a notification; a repeat of it gets the same event id."""
    identity = notice.notice_id or hashlib.sha256(body).hexdigest()
    return ChannelNotified(
        event_id=derived_id(notice.channel, "notice", identity),
        payment_id=notice.order_id,
        occurred_at=notice.occurred_at,
        channel=notice.channel,
        kind=str(notice.kind),
        outcome=str(notice.outcome),
        channel_ref=notice.channel_ref,
        amount_minor=notice.amount_minor,
        currency=notice.currency,
        refund_id=notice.refund_id,
        notice_id=notice.notice_id,
    )


class NotificationReceiver:
    """The HTTP endpoint the channels notify; records each notification before answering."""

    def __init__(
        self,
        adapters: Mapping[str, ChannelAdapter],
        producer: ProducerLink,
        emit: Callable[[AvroRecord], int],
    ) -> None:
        self._adapters = adapters
        self._producer = producer
        self._emit = emit

    def app(self) -> web.Application:
        """The aiohttp application serving ``POST /notify/{channel}``."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/notify/{channel}", self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        """Verify, record, then acknowledge one notification."""
        adapter = self._adapters.get(request.match_info["channel"])
        if adapter is None:
            return web.json_response({"error": "no such channel"}, status=404)
        body = await request.read()
        try:
            notice = adapter.read_notice(request.headers, body)
        except NoticeRefused as refused:
            log.warning("%s notification refused: %s", adapter.name, refused.reason)
            return _response(adapter.refuse(refused.reason))
        if not await self._recorded(self._emit(notified_event(notice, body))):
            return _response(adapter.refuse("not recorded yet"))
        return _response(adapter.acknowledge())

    async def _recorded(self, mark: int) -> bool:
        deadline = time.monotonic() + RECORD_TIMEOUT
        while not self._producer.acknowledged(mark):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True


def _response(answer: NoticeAnswer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=dict(answer.headers))
