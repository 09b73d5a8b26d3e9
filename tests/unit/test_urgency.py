"""A batch handled by urgency: what finishes payments first, every partition still in order."""

from __future__ import annotations

from dataclasses import dataclass

from streams.engine.processor import by_urgency


@dataclass(frozen=True)
class Consumed:
    """A consumed message as far as grouping looks at it."""

    name: str | None
    partition: int
    offset: int

    def topic(self) -> str | None:
        return self.name


def _batch(*spelled: str) -> list[Consumed]:
    """Messages spelled 'topic/partition/offset'."""
    parts = [item.split("/") for item in spelled]
    return [Consumed(topic, int(partition), int(offset)) for topic, partition, offset in parts]


def test_urgent_topics_go_first_and_the_rest_keep_their_order():
    batch = _batch(
        "commands/0/7", "snapshots/0/3", "commands/1/2", "features/2/9",
        "snapshots/1/5", "events/0/4", "commands/0/8", "snapshots/0/4",
    )  # fmt: skip
    groups = by_urgency(batch, {"snapshots": 0, "features": 1})
    assert groups == [
        _batch("snapshots/0/3", "snapshots/1/5", "snapshots/0/4"),
        _batch("features/2/9"),
        _batch("commands/0/7", "commands/1/2", "events/0/4", "commands/0/8"),
    ]


def test_every_partition_keeps_its_offsets_in_order():
    batch = _batch(*(f"{topic}/{n % 3}/{n}" for n in range(30) for topic in ("a", "b", "c")))
    groups = by_urgency(batch, {"c": 0, "a": 1})
    handled = [message for group in groups for message in group]
    assert sorted(handled, key=id) == sorted(batch, key=id)  # nothing lost or repeated
    for topic in "abc":
        for partition in range(3):
            offsets = [m.offset for m in handled if (m.name, m.partition) == (topic, partition)]
            assert offsets == sorted(offsets)


def test_an_error_report_without_a_topic_waits_with_the_least_urgent():
    batch = [Consumed(None, -1, -1), *_batch("snapshots/0/1")]
    assert by_urgency(batch, {"snapshots": 0}) == [batch[1:], batch[:1]]
