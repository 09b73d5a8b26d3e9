"""The Alipay-style channel: RSA2 signing, the adapter (charges, refunds, payouts), the gateway
simulator and its bill."""

from channels.alipay.adapter import AlipayAdapter
from channels.alipay.bill import (
    BILL_COLUMNS,
    bill_file_name,
    bill_rows,
    trade_bill_text,
    write_trade_bill,
)
from channels.alipay.replies import ALIPAY_ERROR_CODES, INSUFFICIENT_BALANCE
from channels.alipay.signing import (
    load_private_key,
    load_public_key,
    new_private_key,
    private_key_pem,
    public_key_pem,
)
from channels.alipay.simulator import RESEND_SCHEDULE_SECONDS, AlipaySimulator, SimulatorKeys

__all__ = [
    "ALIPAY_ERROR_CODES",
    "BILL_COLUMNS",
    "INSUFFICIENT_BALANCE",
    "RESEND_SCHEDULE_SECONDS",
    "AlipayAdapter",
    "AlipaySimulator",
    "SimulatorKeys",
    "bill_file_name",
    "bill_rows",
    "load_private_key",
    "load_public_key",
    "new_private_key",
    "private_key_pem",
    "public_key_pem",
    "trade_bill_text",
    "write_trade_bill",
]
