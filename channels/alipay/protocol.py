"""The open-platform gateway's wire conventions, shared by the simulator and the adapter."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

# The channel keeps its books, timestamps and business dates in Beijing time.
SHANGHAI = ZoneInfo("Asia/Shanghai")
CURRENCY = "CNY"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

GATEWAY_PATH = "/gateway.do"
SIGN_TYPE = "RSA2"
CHARSET = "utf-8"
VERSION = "1.0"

PAY = "alipay.trade.pay"
QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"
# Payouts: one transfer from the platform's balance to a payee's account, and its query.
TRANSFER = "alipay.fund.trans.uni.transfer"
TRANSFER_QUERY = "alipay.fund.trans.common.query"
TRANSFER_METHODS = (TRANSFER, TRANSFER_QUERY)
METHODS = (PAY, QUERY, REFUND, *TRANSFER_METHODS)
# The member an answer stands under when the gateway cannot name the method's own.
ERROR_RESPONSE_KEY = "error_response"

# Gateway answer codes: `code` says which layer answered, `sub_code` says why.
SUCCESS = "10000"
PAY_IN_PROCESS = "10003"
UNAVAILABLE = "20000"
MISSING_ARGUMENTS = "40001"
INVALID_ARGUMENTS = "40002"
BUSINESS_FAILED = "40004"

TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_FINISHED = "TRADE_FINISHED"
TRADE_CLOSED = "TRADE_CLOSED"
WAIT_BUYER_PAY = "WAIT_BUYER_PAY"

# What a payout is, in the transfer API's terms: a password-free transfer to a channel account
# named by its login id, made directly by the platform.
TRANSFER_PRODUCT = "TRANS_ACCOUNT_NO_PWD"
TRANSFER_SCENE = "DIRECT_TRANSFER"
LOGON_ID = "ALIPAY_LOGON_ID"
USER_ID = "ALIPAY_USER_ID"

# A transfer's status, in a transfer's answer and in a transfer query's.
TRANSFER_SUCCESS = "SUCCESS"
TRANSFER_DEALING = "DEALING"
TRANSFER_INIT = "INIT"
TRANSFER_WAIT_PAY = "WAIT_PAY"
TRANSFER_FAIL = "FAIL"
TRANSFER_REFUND = "REFUND"  # a bank's return of the money, after a success
TRANSFER_CLOSED = "CLOSED"

NOTIFY_TYPE = "trade_status_sync"
# The body a merchant answers to stop the re-sends; anything else asks for another.
NOTICE_ACCEPTED = "success"
NOTICE_REJECTED = "fail"


def response_key(method: str) -> str:
    """The JSON member holding a method's answer: alipay.trade.pay -> alipay_trade_pay_response."""
    return method.replace(".", "_") + "_response"


def channel_time(moment: datetime) -> str:
    """A moment as the channel writes it, in Beijing time to the second."""
    return moment.astimezone(SHANGHAI).strftime(TIME_FORMAT)


def channel_time_millis(moment: datetime) -> str:
    """A moment to the millisecond, as the channel writes refund times (gmt_refund)."""
    local = moment.astimezone(SHANGHAI)
    return f"{local.strftime(TIME_FORMAT)}.{local.microsecond // 1000:03d}"


def parse_channel_time(text: str) -> datetime:
    """A channel timestamp, with or without milliseconds, read as Beijing time; raises
    ValueError when malformed."""
    layout = TIME_FORMAT + ".%f" if "." in text else TIME_FORMAT
    return datetime.strptime(text, layout).replace(tzinfo=SHANGHAI)
