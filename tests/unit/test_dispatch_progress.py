"""A partition's commit position while its payments finish out of order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.dispatch.progress import PartitionProgress


def test_nothing_read_means_no_position():
    assert PartitionProgress().position() is None


def test_a_position_waits_for_the_oldest_open_payment():
    progress = PartitionProgress()
    for offset in (10, 11, 12):
        progress.opened(offset)
    progress.read(13)
    progress.finished(12)
    progress.finished(11)
    assert progress.position() == 10, "10 is still being dispatched"
    progress.finished(10)
    assert progress.position() == 14 and progress.busy == 0


@given(st.permutations(list(range(20))), st.sets(st.integers(0, 19)))
def test_the_position_is_always_the_oldest_unfinished(order, finished):
    progress = PartitionProgress()
    for offset in range(20):
        progress.opened(offset)
    for offset in order:
        if offset in finished:
            progress.finished(offset)
    unfinished = set(range(20)) - finished
    assert progress.position() == (min(unfinished) if unfinished else 20)
    assert progress.busy == len(unfinished)
