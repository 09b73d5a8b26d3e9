"""A partition's commit position while its payments finish out of order, and the notices kept
for dispatches that have not asked yet."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from events.records import utc_now
from events.routing_records import ChannelNotified
from streams.dispatch.notices import NoticeBoard
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


def _notice(number: int) -> ChannelNotified:
    return ChannelNotified(
        event_id=f"n{number}",
        payment_id=f"pay-{number}",
        occurred_at=utc_now(),
        channel="wechat",
        kind="PAYMENT",
        outcome="SUCCEEDED",
        channel_ref=f"wx-{number}",
        amount_minor=100,
        currency="CNY",
        refund_id=None,
        notice_id=f"EV-{number}",
    )


async def test_an_early_notice_waits_for_its_dispatch_and_the_kept_ones_are_capped():
    board = NoticeBoard(most_kept=3)
    for number in range(5):
        board.post(_notice(number))
    assert await board.wait("pay-0", "wechat", 0.01) is None, "the oldest went first"
    kept = await board.wait("pay-4", "wechat", 0.01)
    assert kept is not None and kept.channel_ref == "wx-4"
    assert await board.wait("pay-4", "wechat", 0.01) is None, "handed over once"
