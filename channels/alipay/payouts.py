"""The transfer API's answer nodes as payout replies.

alipay.fund.trans.uni.transfer answers 10000 with the transfer's ``status`` (SUCCESS for a
transfer to an account) and no amount; alipay.fund.trans.common.query answers the same status
with ``trans_amount``. A failure is classed by its sub_code, as every other answer's is. The
channel's transfer number (``order_id``) is the reply's channel_ref.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.alipay.protocol import (
    CURRENCY,
    SUCCESS,
    TRANSFER_CLOSED,
    TRANSFER_DEALING,
    TRANSFER_FAIL,
    TRANSFER_INIT,
    TRANSFER_REFUND,
    TRANSFER_SUCCESS,
    TRANSFER_WAIT_PAY,
)
from channels.alipay.replies import TRANSFER_FAILED, NodeUnreadable, failure_reply
from channels.base import AttemptOutcome, ChannelReply
from events.money import MalformedAmount, parse_decimal_text

_PENDING = frozenset({TRANSFER_DEALING, TRANSFER_INIT, TRANSFER_WAIT_PAY})
# A bank's return (REFUND) also leaves the payee without the money.
_FAILED = frozenset({TRANSFER_FAIL, TRANSFER_REFUND, TRANSFER_CLOSED})


def transfer_reply(node: Mapping[str, Any]) -> ChannelReply:
    """alipay.fund.trans.uni.transfer: the payout's outcome by the transfer's status."""
    if node.get("code") != SUCCESS:
        return failure_reply(node)
    return _status_reply(node, amount_field=None)


def transfer_query_reply(node: Mapping[str, Any]) -> ChannelReply:
    """alipay.fund.trans.common.query: where the payout stands, with what moved."""
    if node.get("code") != SUCCESS:
        return failure_reply(node)
    return _status_reply(node, amount_field="trans_amount")


def _status_reply(node: Mapping[str, Any], amount_field: str | None) -> ChannelReply:
    status = node.get("status")
    order_id = _text(node, "order_id")
    message = str(node.get("msg", ""))
    if status == TRANSFER_SUCCESS:
        if order_id is None:
            raise NodeUnreadable("a successful transfer names no order_id")
        amount = None if amount_field is None else _amount(node, amount_field)
        return ChannelReply(
            AttemptOutcome.SUCCEEDED, channel_ref=order_id, amount_minor=amount, message=message
        )
    if status in _PENDING:
        return ChannelReply(AttemptOutcome.PENDING, channel_ref=order_id, message=message)
    if status in _FAILED:
        # The status settles it, whatever the code: the payee was not paid.
        return ChannelReply(
            AttemptOutcome.FAILED,
            channel_ref=order_id,
            code=_text(node, "error_code") or TRANSFER_FAILED,
            message=str(node.get("fail_reason") or status),
        )
    # No status (or a new one) says nothing about the money: the reply must be UNKNOWN.
    raise NodeUnreadable(f"unknown transfer status {status!r}")


def _amount(node: Mapping[str, Any], field: str) -> int:
    try:
        return parse_decimal_text(str(node.get(field, "")), CURRENCY)
    except MalformedAmount as error:
        raise NodeUnreadable(str(error)) from None


def _text(node: Mapping[str, Any], field: str) -> str | None:
    value = node.get(field)
    return value if isinstance(value, str) and value else None
