"""The topic catalogue on a real broker: created once, with the retention the log needs."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.admin import TopicSetupError, delete_topics, ensure_topics
from events.topics import TopicCatalogue

pytestmark = pytest.mark.e2e


async def topic_config(bootstrap: str, topic: str, timeout: float = 15.0) -> dict[str, str]:
    """The topic's configuration; a topic created a moment ago may describe as empty at first."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            (response,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
            (resource,) = response.resources
            config = {entry[0]: entry[1] for entry in resource[4]}
            if config or time.monotonic() > deadline:
                return config
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_catalogue_topics_are_created_once_with_their_retention(kafka_bootstrap):
    catalogue = TopicCatalogue(f"t{uuid.uuid4().hex[:10]}")
    try:
        created = await ensure_topics(kafka_bootstrap, catalogue)
        assert sorted(created) == sorted(spec.name for spec in catalogue.all())
        assert await ensure_topics(kafka_bootstrap, catalogue) == []
        events = await topic_config(kafka_bootstrap, catalogue.events.name)
        assert events["retention.ms"] == "-1", "the payment log must be kept forever"
        assert events["cleanup.policy"] == "delete"
        commands = await topic_config(kafka_bootstrap, catalogue.commands.name)
        assert commands["retention.ms"] == str(7 * 24 * 3600 * 1000)
    finally:
        await delete_topics(kafka_bootstrap, [spec.name for spec in catalogue.all()])


async def test_a_replication_factor_the_cluster_cannot_meet_is_a_clear_error(kafka_bootstrap):
    catalogue = TopicCatalogue(f"t{uuid.uuid4().hex[:10]}")
    with pytest.raises(TopicSetupError, match="InvalidReplicationFactor"):
        await ensure_topics(kafka_bootstrap, catalogue, replication_factor=3)
