"""One payout on the payee's channel: send, settle what is unclear, report.

Our payout id is the channel's transfer number and idempotency key: sending it again (after a
timeout, an unreadable answer, a crash, or when a query finds no record of it) can never pay
twice. A payout has no fallback: the payee's account is on this channel only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from channels.base import AttemptOutcome, ChannelAdapter, ChannelReply, PayoutOrder
from events.identity import derived_id
from events.payout_records import PayoutCompleted, PayoutFailed, PayoutRouted
from events.records import utc_now
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.settling import PATIENT, Emit, SettleTiming, clear_failure, settle


@dataclass(frozen=True)
class PayoutPlan:
    """A routed payout: how much goes to whom, through which channel."""

    payout_id: str
    merchant_id: str
    channel: str
    order: PayoutOrder

    @classmethod
    def of(cls, routed: PayoutRouted) -> PayoutPlan:
        """The plan of a routed payout."""
        order = PayoutOrder(
            payout_id=routed.payout_id,
            payee_account=routed.payee_account,
            payee_name=routed.payee_name,
            amount_minor=routed.amount_minor,
            currency=routed.currency,
            remark=routed.remark,
        )
        return cls(routed.payout_id, routed.merchant_id, routed.channel, order)


class PayoutDispatcher:
    """Pays payees through their channel, emitting the outcome as an event."""

    def __init__(
        self,
        adapters: Mapping[str, ChannelAdapter],
        notices: NoticeBoard,
        emit: Emit,
        timing: SettleTiming = PATIENT,
    ) -> None:
        self._adapters = adapters
        self._notices = notices
        self._emit = emit
        self._timing = timing

    async def dispatch(self, plan: PayoutPlan) -> None:
        """Send until the channel says, clearly, that it paid or will not."""
        adapter = self._adapters.get(plan.channel)
        if adapter is None:
            self._failed(plan, ChannelReply(AttemptOutcome.FAILED, code="NO_ADAPTER"))
            return
        codes = adapter.error_codes
        settled = await settle(
            await adapter.payout(plan.order),
            lambda: self._ask(adapter, plan),
            # A code for a missing record is no answer: the payout is sent again instead.
            lambda reply: clear_failure(codes, reply) and not codes.means_absent(reply.code),
            self._notices,
            (plan.payout_id, plan.channel),
            self._timing,
        )
        if settled.reply.outcome is AttemptOutcome.SUCCEEDED:
            self._completed(plan, settled.reply.channel_ref, settled.settled_by)
        else:
            self._failed(plan, settled.reply)

    async def _ask(self, adapter: ChannelAdapter, plan: PayoutPlan) -> ChannelReply:
        answer = await adapter.query_payout(plan.payout_id)
        failed = answer.outcome is AttemptOutcome.FAILED
        if failed and adapter.error_codes.means_absent(answer.code):
            # Never reached the channel, or not yet: the same payout again is made now or
            # answered from the record the late one left.
            return await adapter.payout(plan.order)
        return answer

    def _completed(self, plan: PayoutPlan, channel_ref: str | None, settled_by: str) -> None:
        self._emit(
            PayoutCompleted(
                event_id=derived_id(plan.payout_id, "completed"),
                payout_id=plan.payout_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                channel=plan.channel,
                channel_ref=channel_ref or "",
                amount_minor=plan.order.amount_minor,
                currency=plan.order.currency,
                settled_by=settled_by,
            )
        )

    def _failed(self, plan: PayoutPlan, reply: ChannelReply) -> None:
        self._emit(
            PayoutFailed(
                event_id=derived_id(plan.payout_id, "failed"),
                payout_id=plan.payout_id,
                occurred_at=utc_now(),
                merchant_id=plan.merchant_id,
                channel=plan.channel,
                amount_minor=plan.order.amount_minor,
                currency=plan.order.currency,
                code=reply.code or "",
                detail=reply.message,
            )
        )
