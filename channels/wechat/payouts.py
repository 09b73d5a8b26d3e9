"""Payouts over WeChat Pay's merchant transfer batch API: a payout is a batch of one detail.

Our payout id names both the batch (``out_batch_no``) and its one detail (``out_detail_no``),
which the channel allows only as 5 to 32 letters and digits. An id that already is such a
number is used as it is; any other maps to a stable number (its first letters and digits, then
a digest of the whole id), so that asking again or querying names the same transfer. The
payee's name travels encrypted for the platform key. Amounts are fen, CNY's minor units, so
our amounts are sent exactly as they are.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from channels.base import AttemptOutcome, ChannelReply, ErrorClass, PayoutOrder
from channels.wechat.signing import encrypt_sensitive
from channels.wechat.wire import (
    TRANSFER_DETAIL_PATH,
    TRANSFER_NO_RULE,
    TRANSFER_TEXT_LIMIT,
    BatchStatus,
    DetailStatus,
)

_FINAL, _RETRYABLE = ErrorClass.FINAL, ErrorClass.RETRYABLE

# The query's answer when the channel has no such batch or detail: the payout never arrived.
NO_SUCH_TRANSFER = "NOT_FOUND"

PAYOUT_ERROR_CODES: Mapping[str, ErrorClass] = {
    # A detail's fail_reason: nothing moved, and the same transfer would fail again.
    "ACCOUNT_NOT_EXIST": _FINAL,
    "NAME_NOT_CORRECT": _FINAL,
    "REAL_NAME_CHECK_FAIL": _FINAL,
    "ID_CARD_NOT_CORRECT": _FINAL,
    "ACCOUNT_FROZEN": _FINAL,
    "OPENID_INVALID": _FINAL,
    "TRANSFER_QUOTA_EXCEED": _FINAL,
    "DAY_RECEIVED_QUOTA_EXCEED": _FINAL,
    "MONTH_RECEIVED_QUOTA_EXCEED": _FINAL,
    "DAY_RECEIVED_COUNT_EXCEED": _FINAL,
    "PRODUCT_AUTH_CHECK_FAIL": _FINAL,
    "OVERDUE_CLOSE": _FINAL,
    "TRANSFER_RISK": _FINAL,
    DetailStatus.FAIL.value: _FINAL,  # a failed detail that gives no reason
    NO_SUCH_TRANSFER: _RETRYABLE,
}

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_READABLE_CHARS = 16
_DIGEST_CHARS = 16
DEFAULT_REMARK = "提现"

_DETAIL_OUTCOMES = {
    DetailStatus.INIT: AttemptOutcome.PENDING,
    DetailStatus.WAIT_PAY: AttemptOutcome.PENDING,
    DetailStatus.PROCESSING: AttemptOutcome.PENDING,
    DetailStatus.SUCCESS: AttemptOutcome.SUCCEEDED,
    DetailStatus.FAIL: AttemptOutcome.FAILED,
}


def transfer_no(payout_id: str) -> str:
    """The channel's batch and detail number for our payout id (always the same one)."""
    if TRANSFER_NO_RULE.fullmatch(payout_id):
        return payout_id
    readable = _NOT_ALNUM.sub("", payout_id)[:_READABLE_CHARS]
    digest = hashlib.sha256(payout_id.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    return f"{readable}{digest}"


def transfer_batch(order: PayoutOrder, appid: str, platform_key: RSAPublicKey) -> dict[str, Any]:
    """The body of ``POST /v3/transfer/batches`` for one payout."""
    number = transfer_no(order.payout_id)
    remark = (order.remark.strip() or DEFAULT_REMARK)[:TRANSFER_TEXT_LIMIT]
    detail: dict[str, Any] = {
        "out_detail_no": number,
        "transfer_amount": order.amount_minor,
        "transfer_remark": remark,
        "openid": order.payee_account,
    }
    if order.payee_name:
        detail["user_name"] = encrypt_sensitive(platform_key, order.payee_name)
    return {
        "appid": appid,
        "out_batch_no": number,
        "batch_name": DEFAULT_REMARK,
        "batch_remark": remark,
        "total_amount": order.amount_minor,
        "total_num": 1,
        "transfer_detail_list": [detail],
    }


def detail_path(payout_id: str) -> str:
    """The detail query's path for our payout id."""
    number = quote(transfer_no(payout_id), safe="")
    return TRANSFER_DETAIL_PATH.format(out_batch_no=number, out_detail_no=number)


def batch_taken(body: Mapping[str, Any]) -> tuple[BatchStatus, str]:
    """A taken batch's status and ``batch_id``; raises ValueError when it lacks them."""
    try:
        return BatchStatus(body["batch_status"]), str(body["batch_id"])
    except KeyError as error:
        raise ValueError("batch lacks its status or id") from error


def batch_ended(status: BatchStatus) -> bool:
    """Whether every detail of the batch has its result."""
    return status in (BatchStatus.FINISHED, BatchStatus.CLOSED)


def detail_reply(body: Mapping[str, Any]) -> ChannelReply:
    """A transfer detail as a reply: PENDING until it is SUCCESS or FAIL."""
    try:
        status = DetailStatus(body["detail_status"])
        amount = body["transfer_amount"]
        detail_id = str(body["detail_id"])
    except (KeyError, ValueError):
        return _unreadable("detail lacks its status, amount or id")
    if isinstance(amount, bool) or not isinstance(amount, int):
        return _unreadable("detail amount is not a whole number of fen")
    outcome = _DETAIL_OUTCOMES[status]
    if outcome is AttemptOutcome.FAILED:
        reason = str(body.get("fail_reason") or status.value)
        return ChannelReply(outcome, channel_ref=detail_id, code=reason, message=reason)
    succeeded = outcome is AttemptOutcome.SUCCEEDED
    return ChannelReply(
        outcome,
        channel_ref=detail_id,
        message=status.value,
        amount_minor=amount if succeeded else None,
    )


def _unreadable(message: str) -> ChannelReply:
    return ChannelReply(AttemptOutcome.UNKNOWN, code="UNREADABLE", message=message)
