"""The gateway's answer nodes as channel replies, and the channel's failure codes by class.

A failure is classed by its ``sub_code`` (the gateway's ``code`` only says which layer
answered). A code that does not say whether money moved is UNKNOWN and its reply is UNKNOWN
too, so the dispatcher queries before doing anything else. The transfer API's codes (payouts)
have no ``ACQ.`` prefix and share the map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from channels.alipay.protocol import (
    CURRENCY,
    PAY_IN_PROCESS,
    SUCCESS,
    TRADE_CLOSED,
    TRADE_FINISHED,
    TRADE_SUCCESS,
    WAIT_BUYER_PAY,
)
from channels.base import AttemptOutcome, ChannelReply, ErrorClass, ErrorCodeMap
from events.money import MalformedAmount, parse_decimal_text

# Our own codes for what happened before or instead of an answer.
UNREACHABLE = "UNREACHABLE"
TIMEOUT = "TIMEOUT"
UNREADABLE = "UNREADABLE"
DISCONNECTED = "DISCONNECTED"
CURRENCY_NOT_SUPPORTED = "CURRENCY_NOT_SUPPORTED"
# A closed trade that was never paid, as a query reports it.
TRADE_HAS_CLOSE = "ACQ.TRADE_HAS_CLOSE"
# A transfer the channel reports failed without naming why.
TRANSFER_FAILED = "TRANSFER_FAILED"
# The channel holds no transfer under our payout id (alipay.fund.trans.common.query).
TRANSFER_NOT_EXIST = "ORDER_NOT_EXIST"
# The platform's account cannot cover the payout: operators top it up and ask again.
INSUFFICIENT_BALANCE = frozenset({"PAYER_BALANCE_NOT_ENOUGH", "BALANCE_IS_NOT_ENOUGH"})

# Nothing moved and the fault is ours or the merchant account's: another channel may take it.
_RETRYABLE = (
    UNREACHABLE,
    CURRENCY_NOT_SUPPORTED,
    # The gateway refused the call before any business handling.
    "isv.missing-method",
    "isv.missing-app-id",
    "isv.missing-signature-type",
    "isv.missing-signature",
    "isv.missing-timestamp",
    "isv.missing-version",
    "isv.invalid-method",
    "isv.invalid-app-id",
    "isv.invalid-signature-type",
    "isv.invalid-signature",
    "isv.invalid-charset",
    "isv.invalid-timestamp",
    "isv.insufficient-isv-permissions",
    "aop.invalid-auth-token",
    # The business layer refused the merchant's request or account, not the buyer.
    "ACQ.INVALID_PARAMETER",
    "ACQ.ACCESS_FORBIDDEN",
    "ACQ.PARTNER_ERROR",
    "ACQ.EXIST_FORBIDDEN_WORD",
    "ACQ.TOTAL_FEE_EXCEED",
    "ACQ.SELLER_BEEN_BLOCKED",
    "ACQ.BEYOND_PAY_RESTRICTION",
    "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
    "ACQ.INVALID_STORE_ID",
    "ACQ.SELLER_BALANCE_NOT_ENOUGH",
    # The channel holds no trade (or transfer) under our id: nothing moved there.
    "ACQ.TRADE_NOT_EXIST",
    TRANSFER_NOT_EXIST,
)

# Nothing moved because of the buyer or the trade itself: trying again elsewhere will not help.
_FINAL = (
    "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
    "ACQ.BUYER_ENABLE_STATUS_FORBID",
    "ACQ.BUYER_SELLER_EQUAL",
    "ACQ.TRADE_BUYER_NOT_MATCH",
    "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
    "ACQ.PAYMENT_AUTH_CODE_INVALID",
    "ACQ.PAYMENT_FAIL",
    "ACQ.PULL_MOBILE_CASHIER_FAIL",
    "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
    TRADE_HAS_CLOSE,
    # Refunds the trade cannot take.
    "ACQ.TRADE_STATUS_ERROR",
    "ACQ.TRADE_NOT_ALLOW_REFUND",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    "ACQ.REFUND_FEE_ERROR",
)

# Payouts the transfer API refused before any money moved; sending them again cannot help.
_PAYOUT_FINAL = (
    TRANSFER_FAILED,
    *sorted(INSUFFICIENT_BALANCE),
    "INVALID_PARAMETER",
    "PRODUCT_NOT_SIGN",
    # The payee's account: absent, not this person's, or unable to receive.
    "PAYEE_NOT_EXIST",
    "PAYEE_ACCOUNT_NOT_EXSIT",  # the channel's own spelling
    "PAYEE_USER_INFO_ERROR",
    "PAYEE_ACCOUNT_STATUS_ERROR",
    "PAYEE_USERINFO_STATUS_ERROR",
    "PAYEE_ACC_OCUPIED",  # the channel's own spelling
    "PERMIT_NON_BANK_LIMIT_PAYEE",
    "PERM_AML_NOT_REALNAME_REV",
    "NO_ACCOUNT_RECEIVE_PERMISSION",
    "PAYER_PAYEE_CANNOT_SAME",
    # The platform's account or its limits.
    "PAYER_STATUS_ERROR",
    "PAYCARD_UNABLE_PAYMENT",
    "PAYER_CERTIFY_CHECK_FAIL",
    "EXCEED_LIMIT_SM_AMOUNT",
    "EXCEED_LIMIT_DM_AMOUNT",
    "EXCEED_LIMIT_MM_AMOUNT",
    "EXCEED_LIMIT_PERSONAL_SM_AMOUNT",
    "EXCEED_LIMIT_UNRN_DM_AMOUNT",
    "EXCEED_LIMIT_DC_RECEIVED",
    "MEMO_REQUIRED_IN_TRANSFER_ERROR",
    "REMARK_HAS_SENSITIVE_WORD",
)

# Money may have moved: a system error on pay does not say whether the buyer was charged, and
# the conflicts say a trade or refund already stands under our id.
_UNKNOWN = (
    TIMEOUT,
    UNREADABLE,
    DISCONNECTED,
    "ACQ.SYSTEM_ERROR",
    "aop.ACQ.SYSTEM_ERROR",
    "isp.unknow-error",
    "ACQ.TRADE_HAS_SUCCESS",
    "ACQ.CONTEXT_INCONSISTENT",
    "ACQ.DISCORDANT_REPEAT_REQUEST",
    # A transfer's system error does not say whether the payee was paid; the other code says a
    # transfer already stands under our payout id.
    "SYSTEM_ERROR",
    "PAYMENT_INFO_INCONSISTENCY",
)

ALIPAY_ERROR_CODES = ErrorCodeMap(
    {
        **dict.fromkeys(_RETRYABLE, ErrorClass.RETRYABLE),
        **dict.fromkeys(_FINAL, ErrorClass.FINAL),
        **dict.fromkeys(_PAYOUT_FINAL, ErrorClass.FINAL),
        **dict.fromkeys(_UNKNOWN, ErrorClass.UNKNOWN),
    },
    absent=frozenset({"ACQ.TRADE_NOT_EXIST", TRANSFER_NOT_EXIST}),
)


class NodeUnreadable(ValueError):
    """An answer node that is signed but lacks what its code promises."""


def pay_reply(node: Mapping[str, Any]) -> ChannelReply:
    """alipay.trade.pay: 10000 means the buyer paid; 10003 that they are still confirming."""
    code = node.get("code")
    if code == SUCCESS:
        return _reply(AttemptOutcome.SUCCEEDED, node, amount_field="total_amount")
    if code == PAY_IN_PROCESS:
        return _reply(AttemptOutcome.PENDING, node)
    return failure_reply(node)


def query_reply(node: Mapping[str, Any]) -> ChannelReply:
    """alipay.trade.query: the trade's status as an outcome."""
    if node.get("code") != SUCCESS:
        return failure_reply(node)
    status = node.get("trade_status")
    if status in {TRADE_SUCCESS, TRADE_FINISHED}:
        return _reply(AttemptOutcome.SUCCEEDED, node, amount_field="total_amount")
    if status == WAIT_BUYER_PAY:
        return _reply(AttemptOutcome.PENDING, node)
    if status == TRADE_CLOSED:
        return _closed_trade_reply(node)
    raise NodeUnreadable(f"unknown trade_status {status!r}")


def refund_reply(node: Mapping[str, Any]) -> ChannelReply:
    """alipay.trade.refund: 10000 means this refund stands (made now, or made before)."""
    if node.get("code") != SUCCESS:
        return failure_reply(node)
    amount_field = "send_back_fee" if node.get("send_back_fee") else None
    return _reply(AttemptOutcome.SUCCEEDED, node, amount_field=amount_field)


def failure_reply(node: Mapping[str, Any]) -> ChannelReply:
    """A refusal, classed by its sub_code: UNKNOWN when it does not say whether money moved."""
    code = str(node.get("sub_code") or node.get("code") or "")
    known = ALIPAY_ERROR_CODES.classify(code) is not ErrorClass.UNKNOWN
    outcome = AttemptOutcome.FAILED if known else AttemptOutcome.UNKNOWN
    message = str(node.get("sub_msg") or node.get("msg") or "")
    return ChannelReply(outcome, channel_ref=_text(node, "trade_no"), code=code, message=message)


def _closed_trade_reply(node: Mapping[str, Any]) -> ChannelReply:
    # A closed trade with a payment date was paid and then refunded in full: it did capture.
    if node.get("send_pay_date"):
        reply = _reply(AttemptOutcome.SUCCEEDED, node, amount_field="total_amount")
        return replace(reply, message="paid, then refunded in full")
    return ChannelReply(
        AttemptOutcome.FAILED,
        channel_ref=_text(node, "trade_no"),
        code=TRADE_HAS_CLOSE,
        message="the trade closed unpaid",
    )


def _reply(
    outcome: AttemptOutcome, node: Mapping[str, Any], amount_field: str | None = None
) -> ChannelReply:
    trade_no = _text(node, "trade_no")
    if trade_no is None:
        raise NodeUnreadable("the answer names no trade_no")
    amount = None if amount_field is None else _amount(node, amount_field)
    return ChannelReply(
        outcome, channel_ref=trade_no, amount_minor=amount, message=str(node.get("msg", ""))
    )


def _amount(node: Mapping[str, Any], field: str) -> int:
    try:
        return parse_decimal_text(str(node.get(field, "")), CURRENCY)
    except MalformedAmount as error:
        raise NodeUnreadable(str(error)) from None


def _text(node: Mapping[str, Any], field: str) -> str | None:
    value = node.get(field)
    return value if isinstance(value, str) and value else None
