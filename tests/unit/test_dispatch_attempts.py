"""One payment's attempts, against scripted channels: what moves money and what never does."""

from __future__ import annotations

import asyncio
import dataclasses

from channels.base import AttemptOutcome, ChannelReply
from events.records import AvroRecord, utc_now
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    ChannelNotified,
    ChannelObservation,
    ChannelUsage,
    PaymentCaptured,
    PaymentFailed,
)
from streams.dispatch.attempts import DispatchPlan, PaymentDispatcher
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.settling import SettleTiming
from tests.unit.scripted_channels import (
    NOT_FOUND,
    PENDING,
    SUCCESS,
    TIMEOUT,
    ScriptedChannel,
)


def plan_factory(*channels: str) -> DispatchPlan:
    return DispatchPlan(
        payment_id="pay-1",
        merchant_id="shop-1",
        amount_minor=1999,
        currency="CNY",
        subject="coins",
        channels=channels,
        fees={channel: 12 for channel in channels},
    )


async def dispatched(plan: DispatchPlan, *channels: ScriptedChannel, board=None) -> list:
    emitted: list[AvroRecord] = []
    dispatcher = PaymentDispatcher(
        {channel.name: channel for channel in channels},
        board or NoticeBoard(),
        emitted.append,
        lambda channel: f"http://127.0.0.1:1/notify/{channel}",
        SettleTiming(first_query_s=0.01, longest_query_s=0.02),
    )
    await dispatcher.dispatch(plan)
    return [record for record in emitted if not isinstance(record, ChannelObservation)]


async def test_a_success_is_captured_once_from_the_reply():
    alipay = ScriptedChannel("alipay", [SUCCESS])
    events = await dispatched(plan_factory("alipay", "card"), alipay)
    assert [type(e) for e in events] == [PaymentCaptured]
    assert events[0].settled_by == "reply" and events[0].channel == "alipay"
    assert events[0].fee_minor == 12 and alipay.charge_calls == 1


async def test_a_retryable_failure_moves_to_the_fallback():
    card = ScriptedChannel("card", [ChannelReply(AttemptOutcome.FAILED, code="busy")])
    card_b = ScriptedChannel("card_b", [SUCCESS])
    events = await dispatched(plan_factory("card", "card_b"), card, card_b)
    assert [type(e) for e in events] == [ChannelAttemptFailed, PaymentCaptured]
    assert events[0].next_channel == "card_b" and events[0].error_class == "RETRYABLE"
    assert events[1].channel == "card_b" and events[1].attempt == 2


async def test_a_final_decline_is_never_retried_elsewhere():
    card = ScriptedChannel("card", [ChannelReply(AttemptOutcome.FAILED, code="declined")])
    card_b = ScriptedChannel("card_b", [SUCCESS])
    events = await dispatched(plan_factory("card", "card_b"), card, card_b)
    assert [type(e) for e in events] == [ChannelAttemptFailed, PaymentFailed]
    assert events[1].reason_code == "DECLINED" and events[1].channels_tried == ["card"]
    assert card_b.charge_calls == 0


async def test_a_timeout_stays_unknown_until_a_query_says_it_captured():
    card = ScriptedChannel("card", [TIMEOUT], queries=[TIMEOUT, SUCCESS])
    card_b = ScriptedChannel("card_b", [SUCCESS])
    events = await dispatched(plan_factory("card", "card_b"), card, card_b)
    assert [type(e) for e in events] == [ChannelAttemptPending, PaymentCaptured]
    assert events[0].status == "UNKNOWN" and events[0].code == "TIMEOUT"
    assert events[1].settled_by == "query" and events[1].channel == "card"
    assert card_b.charge_calls == 0, "never moved on while the first channel was unclear"


async def test_an_order_the_channel_never_saw_is_charged_again_on_the_same_channel():
    card = ScriptedChannel("card", [TIMEOUT, SUCCESS], queries=[NOT_FOUND])
    card_b = ScriptedChannel("card_b", [SUCCESS])
    events = await dispatched(plan_factory("card", "card_b"), card, card_b)
    assert [type(e) for e in events] == [ChannelAttemptPending, PaymentCaptured]
    assert card.charge_calls == 2 and card_b.charge_calls == 0


async def test_a_code_that_does_not_say_is_settled_by_asking():
    unclear = ChannelReply(AttemptOutcome.FAILED, code="system_error")
    busy = ChannelReply(AttemptOutcome.FAILED, code="busy")
    card = ScriptedChannel("card", [unclear, busy], queries=[TIMEOUT, NOT_FOUND])
    card_b = ScriptedChannel("card_b", [SUCCESS])
    events = await dispatched(plan_factory("card", "card_b"), card, card_b)
    kinds = [type(e) for e in events]
    assert kinds == [ChannelAttemptPending, ChannelAttemptFailed, PaymentCaptured]
    assert events[1].error_class == "RETRYABLE" and events[2].channel == "card_b"


async def test_a_pending_charge_is_settled_by_its_notification():
    board = NoticeBoard()
    wechat = ScriptedChannel("wechat", [PENDING], queries=[PENDING])

    async def notify_later() -> None:
        await asyncio.sleep(0.005)
        board.post(
            ChannelNotified(
                event_id="n-1",
                payment_id="pay-1",
                occurred_at=utc_now(),
                channel="wechat",
                kind="PAYMENT",
                outcome="SUCCEEDED",
                channel_ref="wx-42",
                amount_minor=1999,
                currency="CNY",
                refund_id=None,
                notice_id="EV-1",
            )
        )

    notifying = asyncio.create_task(notify_later())
    events = await dispatched(plan_factory("wechat"), wechat, board=board)
    await notifying
    assert [type(e) for e in events] == [ChannelAttemptPending, PaymentCaptured]
    assert events[1].settled_by == "notification" and events[1].channel_ref == "wx-42"


async def test_a_query_that_finds_the_order_failed_ends_it_without_charging_again():
    wechat = ScriptedChannel(
        "wechat", [PENDING], queries=[ChannelReply(AttemptOutcome.FAILED, code="declined")]
    )
    card = ScriptedChannel("card", [SUCCESS])
    events = await dispatched(plan_factory("wechat", "card"), wechat, card)
    assert [type(e) for e in events] == [ChannelAttemptPending, ChannelAttemptFailed, PaymentFailed]
    assert wechat.charge_calls == 1 and card.charge_calls == 0


async def test_every_channel_failing_retryably_ends_the_payment_exhausted():
    busy = ChannelReply(AttemptOutcome.FAILED, code="busy")
    card, card_b = ScriptedChannel("card", [busy]), ScriptedChannel("card_b", [busy])
    events = await dispatched(plan_factory("card", "card_b"), card, card_b)
    assert [type(e) for e in events] == [ChannelAttemptFailed, ChannelAttemptFailed, PaymentFailed]
    assert events[1].next_channel is None
    assert events[2].reason_code == "CHANNELS_EXHAUSTED"
    assert events[2].channels_tried == ["card", "card_b"]


async def test_a_channel_without_an_adapter_is_skipped_for_the_next():
    card_b = ScriptedChannel("card_b", [SUCCESS])
    events = await dispatched(plan_factory("card", "card_b"), card_b)
    assert [type(e) for e in events] == [ChannelAttemptFailed, PaymentCaptured]
    assert events[0].code == "NO_ADAPTER"


async def test_every_charge_call_is_observed_for_the_routers():
    emitted: list[AvroRecord] = []
    card = ScriptedChannel("card", [TIMEOUT], queries=[SUCCESS])
    dispatcher = PaymentDispatcher(
        {"card": card}, NoticeBoard(), emitted.append, lambda c: "", SettleTiming(0.01, 0.02)
    )
    await dispatcher.dispatch(plan_factory("card"))
    (observed,) = [e for e in emitted if isinstance(e, ChannelObservation)]
    assert observed.channel == "card" and observed.timed_out and not observed.succeeded


async def test_a_fallback_counts_against_its_own_quota_and_the_winner_is_left_to_the_router():
    emitted: list[AvroRecord] = []
    card = ScriptedChannel("card", [ChannelReply(AttemptOutcome.FAILED, code="busy")])
    card_b = ScriptedChannel("card_b", [SUCCESS])
    dispatcher = PaymentDispatcher(
        {"card": card, "card_b": card_b}, NoticeBoard(), emitted.append, lambda c: ""
    )
    plan = dataclasses.replace(plan_factory("card", "card_b"), business_date="2024-05-01")
    await dispatcher.dispatch(plan)
    (usage,) = [e for e in emitted if isinstance(e, ChannelUsage)]
    assert (usage.channel, usage.amount_minor, usage.business_date) == (
        "card_b",
        1999,
        "2024-05-01",
    )
