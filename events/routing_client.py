"""Publishing routing policies: a new version is live on every router without a restart."""

from __future__ import annotations

import hashlib

from events.identity import derived_id
from events.publisher import Publisher
from events.records import utc_now
from events.routing_records import RoutingPolicyPublished
from events.schema_store import SchemaCatalogue

POLICY_KEY = b"policy"


class RoutingClient(Publisher):
    """Publishes routing records; each call returns once all in-sync replicas have it."""

    def __init__(
        self,
        bootstrap: str,
        *,
        namespace: str = "paystream",
        schemas: SchemaCatalogue | None = None,
    ) -> None:
        # Each call waits for its record, so lingering for a batch would only add latency.
        super().__init__(bootstrap, namespace=namespace, schemas=schemas, linger_ms=0)

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
        encoded = self._codec.encode(record)
        await self._producer.send_and_wait(
            self.topics.routing_policies.name, value=encoded, key=POLICY_KEY
        )
        return record
