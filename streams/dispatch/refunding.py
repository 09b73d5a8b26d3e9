"""One refund on the channel that captured its payment: ask, settle what is unclear, report.

Our refund id is the channel's refund number and idempotency key, so asking again (after a
timeout, an unreadable answer, a crash) can never give money back twice: the channel answers a
repeated refund from its record of it. A notification that the refund succeeded settles it
without asking again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from channels.base import AttemptOutcome, ChannelAdapter, ChannelReply, RefundOrder
from events.identity import derived_id
from events.records import PaymentRefunded, utc_now
from events.refund_records import RefundFailed, RefundRouted
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.settling import PATIENT, Emit, SettleTiming, clear_failure, settle


@dataclass(frozen=True)
class RefundPlan:
    """A routed refund: how much goes back, through which channel."""

    payment_id: str
    merchant_id: str
    refund_id: str
    channel: str
    amount_minor: int
    currency: str
    captured_minor: int
    reason: str

    @classmethod
    def of(cls, routed: RefundRouted) -> RefundPlan:
        """The plan of a routed refund."""
        return cls(
            payment_id=routed.payment_id,
            merchant_id=routed.merchant_id,
            refund_id=routed.refund_id,
            channel=routed.channel,
            amount_minor=routed.amount_minor,
            currency=routed.currency,
            captured_minor=routed.captured_minor,
            reason=routed.reason,
        )


class RefundDispatcher:
    """Gives money back through the capturing channel, emitting the outcome as an event."""

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

    async def dispatch(self, plan: RefundPlan) -> None:
        """Ask until the channel says, clearly, that it gave the money back or will not."""
        adapter = self._adapters.get(plan.channel)
        if adapter is None:
            self._failed(plan, ChannelReply(AttemptOutcome.FAILED, code="NO_ADAPTER"))
            return
        order, codes = self._order(plan), adapter.error_codes
        settled = await settle(
            await adapter.refund(order),
            lambda: adapter.refund(order),
            lambda reply: clear_failure(codes, reply),
            self._notices,
            (plan.refund_id, plan.channel),
            self._timing,
        )
        if settled.reply.outcome is AttemptOutcome.SUCCEEDED:
            self._refunded(plan, settled.reply.channel_ref)
        else:
            self._failed(plan, settled.reply)

    def _order(self, plan: RefundPlan) -> RefundOrder:
        return RefundOrder(
            order_id=plan.payment_id,
            refund_id=plan.refund_id,
            amount_minor=plan.amount_minor,
            currency=plan.currency,
            total_minor=plan.captured_minor,
            reason=plan.reason,
            notify_url=self._notify_url(plan.channel),
        )

    def _refunded(self, plan: RefundPlan, channel_ref: str | None) -> None:
        self._emit(
            PaymentRefunded(
                event_id=derived_id(plan.refund_id, "refunded"),
                payment_id=plan.payment_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                refund_id=plan.refund_id,
                amount_minor=plan.amount_minor,
                currency=plan.currency,
                channel=plan.channel,
                channel_ref=channel_ref,
            )
        )

    def _failed(self, plan: RefundPlan, reply: ChannelReply) -> None:
        self._emit(
            RefundFailed(
                event_id=derived_id(plan.refund_id, "failed"),
                payment_id=plan.payment_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                refund_id=plan.refund_id,
                channel=plan.channel,
                amount_minor=plan.amount_minor,
                currency=plan.currency,
                code=reply.code or "",
                detail=reply.message,
            )
        )
