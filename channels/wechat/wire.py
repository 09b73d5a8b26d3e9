"""The WeChat Pay v3 vocabulary both sides of the wire share: paths, states, times, currency."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

# The channel keeps its business days, bills and timestamps in China Standard Time.
SHANGHAI = ZoneInfo("Asia/Shanghai")
CURRENCY = "CNY"

CREATE_PATH = "/v3/pay/transactions/{trade_type}"
QUERY_PATH = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
REFUND_PATH = "/v3/refund/domestic/refunds"
# The merchant transfer ("商家转账") batch API: a payout is a batch of one detail.
TRANSFER_BATCH_PATH = "/v3/transfer/batches"
TRANSFER_DETAIL_PATH = (
    "/v3/transfer/batches/out-batch-no/{out_batch_no}/details/out-detail-no/{out_detail_no}"
)
# out_batch_no and out_detail_no: letters and digits only, 5 to 32 of them.
TRANSFER_NO_RULE = re.compile(r"[A-Za-z0-9]{5,32}")
TRANSFER_TEXT_LIMIT = 32  # batch_name, batch_remark and transfer_remark: at most 32 characters

# The channel re-sends an unacknowledged callback after these many seconds (24 h 4 min in all).
RESEND_SCHEDULE_SECONDS: tuple[float, ...] = (
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
)  # fmt: skip


class TradeState(StrEnum):
    """A transaction's ``trade_state``."""

    SUCCESS = "SUCCESS"  # paid
    REFUND = "REFUND"  # paid, then (partly) refunded
    NOTPAY = "NOTPAY"  # created, the user has not paid yet
    USERPAYING = "USERPAYING"  # the user is entering a password
    PAYERROR = "PAYERROR"  # the payment failed (bank declined)
    CLOSED = "CLOSED"  # closed unpaid
    REVOKED = "REVOKED"  # a code payment cancelled


class RefundStatus(StrEnum):
    """A refund's ``status`` (``refund_status`` in callbacks)."""

    SUCCESS = "SUCCESS"
    PROCESSING = "PROCESSING"
    CLOSED = "CLOSED"
    ABNORMAL = "ABNORMAL"


class BatchStatus(StrEnum):
    """A transfer batch's ``batch_status``."""

    ACCEPTED = "ACCEPTED"  # taken; its details are not yet being paid
    PROCESSING = "PROCESSING"  # its details are being paid
    FINISHED = "FINISHED"  # every detail ended (SUCCESS or FAIL)
    CLOSED = "CLOSED"  # closed before its details were paid


class DetailStatus(StrEnum):
    """A transfer detail's ``detail_status``."""

    INIT = "INIT"
    WAIT_PAY = "WAIT_PAY"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"


def wechat_time(moment: datetime) -> str:
    """A moment as the channel writes it: RFC 3339 in Shanghai time, whole seconds."""
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def read_wechat_time(text: str) -> datetime:
    """An aware moment from the channel's RFC 3339 text; raises ValueError."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment
