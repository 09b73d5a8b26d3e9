"""One refund on its channel, against scripted channels: settled, never guessed."""

from __future__ import annotations

import asyncio

from channels.base import AttemptOutcome, ChannelReply
from events.records import AvroRecord, PaymentRefunded, utc_now
from events.refund_records import RefundFailed
from events.routing_records import ChannelNotified
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.refunding import RefundDispatcher, RefundPlan
from streams.dispatch.settling import SettleTiming
from tests.unit.scripted_channels import PENDING, SUCCESS, TIMEOUT, ScriptedChannel

PLAN = RefundPlan(
    payment_id="pay-1",
    merchant_id="shop-1",
    refund_id="rf-1",
    channel="wechat",
    amount_minor=500,
    currency="CNY",
    captured_minor=1_999,
    reason="cancelled",
)


async def refunded(channel: ScriptedChannel, board: NoticeBoard | None = None) -> list:
    emitted: list[AvroRecord] = []
    dispatcher = RefundDispatcher(
        {channel.name: channel},
        board or NoticeBoard(),
        emitted.append,
        lambda name: f"http://127.0.0.1:1/notify/{name}",
        SettleTiming(first_query_s=0.01, longest_query_s=0.02),
    )
    await dispatcher.dispatch(PLAN)
    return emitted


async def test_a_refund_the_channel_makes_is_reported_with_its_reference():
    wechat = ScriptedChannel("wechat", refunds=[ChannelReply(AttemptOutcome.SUCCEEDED, "wx-rf")])
    (done,) = await refunded(wechat)
    assert isinstance(done, PaymentRefunded)
    assert (done.channel, done.channel_ref, done.amount_minor) == ("wechat", "wx-rf", 500)
    order = wechat.refund_orders[0]
    assert (order.refund_id, order.total_minor, order.order_id) == ("rf-1", 1_999, "pay-1")


async def test_an_unclear_answer_is_asked_again_under_the_same_refund_id():
    wechat = ScriptedChannel("wechat", refunds=[TIMEOUT, TIMEOUT, SUCCESS])
    (done,) = await refunded(wechat)
    assert isinstance(done, PaymentRefunded)
    assert {order.refund_id for order in wechat.refund_orders} == {"rf-1"}
    assert len(wechat.refund_orders) == 3


async def test_a_refused_refund_is_reported_failed_with_the_channels_code():
    refused = ChannelReply(AttemptOutcome.FAILED, code="declined", message="too old")
    (failed,) = await refunded(ScriptedChannel("wechat", refunds=[refused]))
    assert isinstance(failed, RefundFailed) and failed.code == "declined"


async def test_a_pending_refund_is_settled_by_its_notification():
    board = NoticeBoard()
    wechat = ScriptedChannel("wechat", refunds=[PENDING])

    async def notify() -> None:
        await asyncio.sleep(0.005)
        board.post(
            ChannelNotified(
                event_id="n",
                payment_id="pay-1",
                occurred_at=utc_now(),
                channel="wechat",
                kind="REFUND",
                outcome="SUCCEEDED",
                channel_ref="wx-rf-9",
                amount_minor=500,
                currency="CNY",
                refund_id="rf-1",
                notice_id="EV-9",
            )
        )

    notifying = asyncio.create_task(notify())
    (done,) = await refunded(wechat, board)
    await notifying
    assert isinstance(done, PaymentRefunded) and done.channel_ref == "wx-rf-9"
