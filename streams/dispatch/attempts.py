"""One payment's attempts on its channels: charge, settle what is unclear, fall back, end.

The rules that keep money safe:
- our payment id is every channel's order number and idempotency key, so charging the same
  channel again (after a crash, or to settle an unclear answer) can never capture twice;
- a payment moves to its next channel only after the last one said, for certain, that nothing
  moved and that another channel may try (a RETRYABLE code); a FINAL code ends it;
- an unclear answer (a timeout, an unreadable reply, a code that does not say) is never
  guessed: the payment stays UNKNOWN while the channel is asked (notifications, status
  queries, the same charge again) until it says what happened.
Replaying the same plan after a crash therefore repeats the same calls, which the channels
answer as before, and emits the same events under the same ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from channels.base import (
    AttemptOutcome,
    ChannelAdapter,
    ChannelReply,
    ChargeOrder,
    ErrorClass,
)
from events.identity import derived_id
from events.records import utc_now
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    ChannelObservation,
    ChannelUsage,
    PaymentCaptured,
    PaymentFailed,
)
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.settling import PATIENT, Emit, SettleTiming, clear_failure, settle

# Who counted a fallback's quota usage (no router skips it as its own).
DISPATCHER = "dispatcher"


@dataclass(frozen=True)
class DispatchPlan:
    """A routed payment: its channels in order (the winner, then the fallbacks) and fees."""

    payment_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    subject: str
    channels: tuple[str, ...]
    fees: Mapping[str, int]
    # The business date its quotas count on; a fallback's use is reported against it (the
    # router counted the winner when it routed).
    business_date: str = ""


@dataclass(frozen=True)
class _Ended:
    """How one attempt ended: captured, or failed with the class of its failure."""

    reply: ChannelReply
    settled_by: str
    error_class: ErrorClass | None
    latency_ms: int = 0


class PaymentDispatcher:
    """Takes routed payments through their channels, emitting every step as an event."""

    def __init__(
        self,
        adapters: Mapping[str, ChannelAdapter],
        notices: NoticeBoard,
        emit: Emit,
        notify_url: Callable[[str], str],
        timing: SettleTiming = PATIENT,
    ) -> None:
        self._adapters = adapters
        self._notices = notices
        self._emit = emit
        self._notify_url = notify_url
        self._timing = timing

    async def dispatch(self, plan: DispatchPlan) -> None:
        """Try the plan's channels in order until one captures or the payment cannot go on."""
        tried: list[str] = []
        for number, channel in enumerate(plan.channels, start=1):
            tried.append(channel)
            if number > 1:
                self._used(plan, number, channel)
            ended = await self._attempt(plan, number, channel)
            if ended.error_class is None:
                self._captured(plan, number, channel, ended)
                return
            upcoming = plan.channels[number] if number < len(plan.channels) else None
            going_on = ended.error_class is ErrorClass.RETRYABLE and upcoming is not None
            self._failed_attempt(plan, number, channel, ended, upcoming if going_on else None)
            if not going_on:
                self._failed(plan, tried, ended)
                return

    async def _attempt(self, plan: DispatchPlan, number: int, channel: str) -> _Ended:
        adapter = self._adapters.get(channel)
        if adapter is None:
            unknown = ChannelReply(AttemptOutcome.FAILED, code="NO_ADAPTER", message=channel)
            return _Ended(unknown, "reply", ErrorClass.RETRYABLE)
        order = self._order(plan, channel)
        began = time.monotonic()
        reply = await adapter.charge(order)
        latency_ms = round((time.monotonic() - began) * 1000)
        self._observe(plan, number, adapter, reply, latency_ms)
        if reply.outcome in (AttemptOutcome.PENDING, AttemptOutcome.UNKNOWN):
            return await self._settle(plan, number, adapter, order, reply)
        if reply.outcome is AttemptOutcome.SUCCEEDED:
            return _Ended(reply, "reply", None, latency_ms)
        return await self._failure(plan, number, adapter, order, reply, latency_ms)

    async def _failure(
        self,
        plan: DispatchPlan,
        number: int,
        adapter: ChannelAdapter,
        order: ChargeOrder,
        reply: ChannelReply,
        latency_ms: int,
    ) -> _Ended:
        """A failure whose code does not say whether money moved is settled like a timeout."""
        error_class = adapter.error_codes.classify(reply.code)
        if error_class is ErrorClass.UNKNOWN:
            unclear = ChannelReply(AttemptOutcome.UNKNOWN, reply.channel_ref, reply.code)
            return await self._settle(plan, number, adapter, order, unclear)
        return _Ended(reply, "reply", error_class, latency_ms)

    async def _settle(
        self,
        plan: DispatchPlan,
        number: int,
        adapter: ChannelAdapter,
        order: ChargeOrder,
        reply: ChannelReply,
    ) -> _Ended:
        """Wait for the channel to say what happened: a notification of success ends it; until
        one comes, the channel is asked with backing-off queries."""
        self._pending(plan, number, adapter.name, reply)
        codes = adapter.error_codes
        settled = await settle(
            reply,
            lambda: self._ask(adapter, order),
            lambda answer: clear_failure(codes, answer),
            self._notices,
            (plan.payment_id, adapter.name),
            self._timing,
        )
        answer = settled.reply
        captured = answer.outcome is AttemptOutcome.SUCCEEDED
        return _Ended(answer, settled.settled_by, None if captured else codes.classify(answer.code))

    async def _ask(self, adapter: ChannelAdapter, order: ChargeOrder) -> ChannelReply:
        """What the channel says of the order now."""
        answer = await adapter.query(order.order_id)
        if answer.outcome is AttemptOutcome.FAILED and adapter.error_codes.means_absent(
            answer.code
        ):
            # The order never reached the channel, or has not yet: the same charge again is
            # made now or answered from the record the late one left. It cannot capture twice,
            # and moving to another channel instead could.
            return await adapter.charge(order)
        return answer

    def _order(self, plan: DispatchPlan, channel: str) -> ChargeOrder:
        return ChargeOrder(
            order_id=plan.payment_id,
            merchant_id=plan.merchant_id,
            amount_minor=plan.amount_minor,
            currency=plan.currency,
            subject=plan.subject,
            notify_url=self._notify_url(channel),
        )

    def _observe(
        self,
        plan: DispatchPlan,
        number: int,
        adapter: ChannelAdapter,
        reply: ChannelReply,
        latency_ms: int,
    ) -> None:
        """Feedback for the routers' service metrics: what the attempt's charge call did. A
        PENDING answer is the channel working as it should (the result comes later)."""
        final = adapter.error_codes.classify(reply.code) is ErrorClass.FINAL
        self._emit(
            ChannelObservation(
                event_id=derived_id(plan.payment_id, "observed", number),
                occurred_at=utc_now(),
                channel=adapter.name,
                succeeded=reply.outcome in (AttemptOutcome.SUCCEEDED, AttemptOutcome.PENDING),
                timed_out=reply.code == "TIMEOUT",
                latency_ms=latency_ms,
                declined=reply.outcome is AttemptOutcome.FAILED and final,
            )
        )

    def _used(self, plan: DispatchPlan, number: int, channel: str) -> None:
        """Feedback for the routers' quotas: a fallback takes the payment too."""
        if not plan.business_date:
            return
        self._emit(
            ChannelUsage(
                event_id=derived_id(plan.payment_id, "usage", number),
                occurred_at=utc_now(),
                channel=channel,
                merchant_id=plan.merchant_id,
                amount_minor=plan.amount_minor,
                currency=plan.currency,
                business_date=plan.business_date,
                router=DISPATCHER,
            )
        )

    def _pending(self, plan: DispatchPlan, number: int, channel: str, reply: ChannelReply) -> None:
        self._emit(
            ChannelAttemptPending(
                event_id=derived_id(plan.payment_id, "pending", number),
                payment_id=plan.payment_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                channel=channel,
                attempt=number,
                status=str(reply.outcome),
                code=reply.code,
                detail=reply.message,
            )
        )

    def _captured(self, plan: DispatchPlan, number: int, channel: str, ended: _Ended) -> None:
        self._emit(
            PaymentCaptured(
                event_id=derived_id(plan.payment_id, "captured"),
                payment_id=plan.payment_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                channel=channel,
                channel_ref=ended.reply.channel_ref or "",
                amount_minor=plan.amount_minor,
                currency=plan.currency,
                fee_minor=plan.fees.get(channel, 0),
                attempt=number,
                settled_by=ended.settled_by,
            )
        )

    def _failed_attempt(
        self, plan: DispatchPlan, number: int, channel: str, ended: _Ended, upcoming: str | None
    ) -> None:
        self._emit(
            ChannelAttemptFailed(
                event_id=derived_id(plan.payment_id, "attempt-failed", number),
                payment_id=plan.payment_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                channel=channel,
                attempt=number,
                code=ended.reply.code or "",
                error_class=str(ended.error_class),
                message=ended.reply.message,
                latency_ms=ended.latency_ms,
                next_channel=upcoming,
            )
        )

    def _failed(self, plan: DispatchPlan, tried: list[str], ended: _Ended) -> None:
        final = ended.error_class is ErrorClass.FINAL
        self._emit(
            PaymentFailed(
                event_id=derived_id(plan.payment_id, "failed"),
                payment_id=plan.payment_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                amount_minor=plan.amount_minor,
                currency=plan.currency,
                reason_code="DECLINED" if final else "CHANNELS_EXHAUSTED",
                detail=f"{tried[-1]}: {ended.reply.code} {ended.reply.message}".strip(),
                channels_tried=tried,
            )
        )
