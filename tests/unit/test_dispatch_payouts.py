"""One payout on the payee's channel, against scripted channels: paid once, never guessed."""

from __future__ import annotations

from channels.base import AttemptOutcome, ChannelReply, PayoutOrder
from events.payout_records import PayoutCompleted, PayoutFailed
from events.records import AvroRecord
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.paying_out import PayoutDispatcher, PayoutPlan
from streams.dispatch.settling import SettleTiming
from tests.unit.scripted_channels import NOT_FOUND, PENDING, SUCCESS, TIMEOUT, ScriptedChannel

PLAN = PayoutPlan(
    payout_id="po-1",
    merchant_id="creator-7",
    channel="alipay",
    order=PayoutOrder(
        payout_id="po-1",
        payee_account="c7@example.com",
        payee_name="Li Lei",
        amount_minor=250_000,
        currency="CNY",
        remark="May earnings",
    ),
)


async def paid_out(channel: ScriptedChannel) -> list[AvroRecord]:
    emitted: list[AvroRecord] = []
    dispatcher = PayoutDispatcher(
        {channel.name: channel},
        NoticeBoard(),
        emitted.append,
        SettleTiming(first_query_s=0.01, longest_query_s=0.02),
    )
    await dispatcher.dispatch(PLAN)
    return emitted


async def test_a_payout_the_channel_makes_is_reported_with_its_reference():
    (done,) = await paid_out(ScriptedChannel("alipay", payouts=[SUCCESS]))
    assert isinstance(done, PayoutCompleted)
    assert (done.channel_ref, done.amount_minor, done.settled_by) == ("ref-1", 250_000, "reply")


async def test_a_refused_payout_fails_with_the_channels_code_and_is_not_sent_again():
    refused = ChannelReply(AttemptOutcome.FAILED, code="declined", message="payee not found")
    alipay = ScriptedChannel("alipay", payouts=[refused])
    (failed,) = await paid_out(alipay)
    assert isinstance(failed, PayoutFailed) and failed.code == "declined"
    assert len(alipay.payout_orders) == 1


async def test_an_unclear_payout_is_settled_by_query_without_paying_twice():
    alipay = ScriptedChannel("alipay", payouts=[TIMEOUT], payout_queries=[PENDING, SUCCESS])
    (done,) = await paid_out(alipay)
    assert isinstance(done, PayoutCompleted) and done.settled_by == "query"
    assert len(alipay.payout_orders) == 1, "settled by asking, not by sending again"


async def test_a_payout_the_channel_never_saw_is_sent_again_under_the_same_id():
    alipay = ScriptedChannel("alipay", payouts=[TIMEOUT, SUCCESS], payout_queries=[NOT_FOUND])
    (done,) = await paid_out(alipay)
    assert isinstance(done, PayoutCompleted)
    assert [order.payout_id for order in alipay.payout_orders] == ["po-1", "po-1"]
