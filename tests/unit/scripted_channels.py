"""Channels that answer from scripts, for the dispatcher's pure logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from channels.base import (
    AttemptOutcome,
    ChannelNotice,
    ChannelReply,
    ChargeOrder,
    ErrorClass,
    ErrorCodeMap,
    NoticeAnswer,
    PayoutOrder,
    RefundOrder,
)

CODES = ErrorCodeMap(
    {
        "busy": ErrorClass.RETRYABLE,
        "declined": ErrorClass.FINAL,
        "system_error": ErrorClass.UNKNOWN,
        "no_such_order": ErrorClass.RETRYABLE,
    },
    absent=frozenset({"no_such_order"}),
)
SUCCESS = ChannelReply(AttemptOutcome.SUCCEEDED, "ref-1")
TIMEOUT = ChannelReply(AttemptOutcome.UNKNOWN, code="TIMEOUT")
PENDING = ChannelReply(AttemptOutcome.PENDING)
NOT_FOUND = ChannelReply(AttemptOutcome.FAILED, code="no_such_order")


class ScriptedChannel:
    """A channel that answers charges and queries from scripts, and counts the captures."""

    def __init__(
        self,
        name: str,
        charges: Sequence[ChannelReply] = (),
        queries: Sequence[ChannelReply] = (),
        refunds: Sequence[ChannelReply] = (),
        payouts: Sequence[ChannelReply] = (),
        payout_queries: Sequence[ChannelReply] = (),
    ) -> None:
        self.name = name
        self.error_codes = CODES
        self._charges = list(charges)
        self._queries = list(queries)
        self._refunds = list(refunds)
        self.charge_calls = 0
        self.query_calls = 0
        self.refund_orders: list[RefundOrder] = []
        self._payouts = list(payouts)
        self._payout_queries = list(payout_queries)
        self.payout_orders: list[PayoutOrder] = []

    async def charge(self, order: ChargeOrder) -> ChannelReply:
        self.charge_calls += 1
        return self._charges.pop(0) if len(self._charges) > 1 else self._charges[0]

    async def query(self, order_id: str) -> ChannelReply:
        self.query_calls += 1
        return self._queries.pop(0) if len(self._queries) > 1 else self._queries[0]

    async def refund(self, order: RefundOrder) -> ChannelReply:
        self.refund_orders.append(order)
        return self._refunds.pop(0) if len(self._refunds) > 1 else self._refunds[0]

    async def payout(self, order: PayoutOrder) -> ChannelReply:
        self.payout_orders.append(order)
        return self._payouts.pop(0) if len(self._payouts) > 1 else self._payouts[0]

    async def query_payout(self, payout_id: str) -> ChannelReply:
        queue = self._payout_queries
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> ChannelNotice:
        raise NotImplementedError

    def acknowledge(self) -> NoticeAnswer:
        return NoticeAnswer(200)

    def refuse(self, reason: str) -> NoticeAnswer:
        return NoticeAnswer(400)

    async def close(self) -> None:
        return None
