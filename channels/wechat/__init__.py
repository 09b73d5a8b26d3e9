"""The WeChat Pay v3-style channel: signatures, adapter, loopback simulator and its ALL bill."""

from channels.wechat.adapter import WECHAT_ERROR_CODES, WechatAdapter
from channels.wechat.bill import (
    BILL_COLUMNS,
    SUMMARY_COLUMNS,
    BillAccount,
    all_bill_text,
    write_all_bill,
)
from channels.wechat.simulator import MerchantAccount, PlatformKeys, WechatSimulator

__all__ = [
    "BILL_COLUMNS",
    "SUMMARY_COLUMNS",
    "WECHAT_ERROR_CODES",
    "BillAccount",
    "MerchantAccount",
    "PlatformKeys",
    "WechatAdapter",
    "WechatSimulator",
    "all_bill_text",
    "write_all_bill",
]
