"""Publishing routing policies: a new version is live on every router without a restart."""

from __future__ import annotations

import hashlib

from events.identity import derived_id
from events.publisher import RecordPublisher
from events.records import utc_now
from events.routing_records import RoutingPolicyPublished

POLICY_KEY = b"policy"


class RoutingClient(RecordPublisher):
    """Publishes routing records; each call returns once all in-sync replicas have it."""

    async def publish_policy(self, version: int, text: str, by: str) -> RoutingPolicyPublished:
        """Make a policy version (its file's text, checked by the caller) live."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        record = RoutingPolicyPublished(
            event_id=derived_id("routing-policy", version, digest),
            occurred_at=utc_now(),
            version=version,
            digest=digest,
            text=text,
            published_by=by,
        )
        await self.publish(self.topics.routing_policies.name, POLICY_KEY, record)
        return record
