"""Creating and removing the catalogue's topics, idempotently."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from events.topics import TopicCatalogue, TopicSpec

# A single-node local broker cannot replicate; a real cluster's operators set their own factor.
REPLICATION_FACTOR = 1


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic of the catalogue."""


def _new_topic(spec: TopicSpec, replication_factor: int) -> NewTopic:
    return NewTopic(
        name=spec.name,
        num_partitions=spec.partitions,
        replication_factor=replication_factor,
        topic_configs=spec.config(),
    )


async def ensure_topics(
    bootstrap: str,
    catalogue: TopicCatalogue,
    replication_factor: int = REPLICATION_FACTOR,
) -> list[str]:
    """Create the catalogue's missing topics; returns the names created (none when all exist)."""
    return await create_missing_topics(bootstrap, catalogue.all(), replication_factor)


async def create_missing_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    replication_factor: int = REPLICATION_FACTOR,
) -> list[str]:
    """Create those of ``specs`` that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [_new_topic(spec, replication_factor) for spec in missing]
        )
        return _created(response.topic_errors)
    finally:
        await admin.close()


def _created(topic_errors: Iterable[Any]) -> list[str]:
    created = []
    for name, code, *message in topic_errors:
        error = for_code(int(code)) if code else None
        if error is None:
            created.append(str(name))
        elif error is not TopicAlreadyExistsError:  # another starter won the race: fine
            raise TopicSetupError(f"could not create topic {name}: {error.__name__} {message}")
    return created


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Delete topics (benchmarks and tests clean up their namespaces with this)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = set(names) & set(await admin.list_topics())
        if wanted:
            await admin.delete_topics(sorted(wanted))
    finally:
        await admin.close()
