"""The card simulator's webhook events, sent as Stripe sends them.

Each event goes to the account's endpoint as JSON, signed with every live endpoint secret in a
``Stripe-Signature`` header made afresh for each attempt, and is re-sent with exponential
backoff for up to three days until the endpoint answers any 2xx.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiohttp

from channels.card.objects import event_json
from channels.card.signing import SIGNATURE_HEADER, signature_header
from channels.simulator import Behaviour, Notifier

_FIRST_RETRY_SECONDS = 60.0
_LONGEST_RETRY_SECONDS = 8 * 3600.0
_RETRY_WINDOW_SECONDS = 3 * 24 * 3600.0
_DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=10)


def webhook_schedule() -> tuple[float, ...]:
    """Seconds between re-sends: doubling from a minute, capped at 8 h, ending within 3 days."""
    waits: list[float] = []
    step = _FIRST_RETRY_SECONDS
    while sum(waits) + step <= _RETRY_WINDOW_SECONDS:
        waits.append(step)
        step = min(step * 2, _LONGEST_RETRY_SECONDS)
    return tuple(waits)


class WebhookSender:
    """Signs and sends events to the endpoint ``url`` (none are sent while it is None)."""

    def __init__(self, behaviour: Behaviour, secrets: Sequence[str], url: str | None) -> None:
        # Stripe sends events to the endpoints configured on the account, not per request.
        self.url = url
        # Every live endpoint secret signs each event (two while a secret is being rolled).
        self.secrets = list(secrets)
        self.notifier = Notifier(webhook_schedule(), behaviour)
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Open the HTTP session deliveries use (inside the running event loop)."""
        self._session = aiohttp.ClientSession(timeout=_DELIVERY_TIMEOUT)

    async def close(self) -> None:
        """Stop pending re-sends and close the session."""
        await self.notifier.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def publish(self, event_type: str, data_object: dict[str, Any], when: datetime) -> None:
        """Send an event about ``data_object`` in the background, on the re-send schedule."""
        url = self.url
        if url is None:
            return
        event_id = f"evt_{uuid.uuid4().hex[:24]}"
        payload = json.dumps(event_json(event_id, event_type, data_object, when)).encode()
        self.notifier.notify(functools.partial(self._deliver, url, payload))

    async def _deliver(self, url: str, payload: bytes) -> bool:
        if self._session is None:
            return False
        # Signed at each attempt, so a late re-send is still within the receiver's tolerance.
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature_header(payload, self.secrets),
        }
        async with self._session.post(url, data=payload, headers=headers) as reply:
            return 200 <= reply.status < 300
