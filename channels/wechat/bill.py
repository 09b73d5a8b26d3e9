"""The channel's ``downloadbill`` ALL bill of one day, laid out as the real one is.

A header line of the Chinese column names, then one line per successful payment (交易状态
SUCCESS) and one per refund (交易状态 REFUND), every value prefixed with a backtick so that
spreadsheets keep long ids as text; then the summary block: its header line and one line of
totals. Amounts are yuan text, exact (never through a float). Payments that never succeeded
are absent. A refund line gives back the refunded share of the payment's fee, as a negative
手续费, so that the day's fee total is what the channel kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from channels.simulator import OrderBook, SimOrder, SimRefund
from channels.wechat.trades import WechatTrade, payer_openid
from channels.wechat.wire import CURRENCY, SHANGHAI
from events.money import decimal_text

BILL_COLUMNS: tuple[str, ...] = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
)  # fmt: skip
SUMMARY_COLUMNS: tuple[str, ...] = (
    "总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
    "订单总金额", "申请退款总金额",
)  # fmt: skip
TICK = "`"


@dataclass(frozen=True)
class BillAccount:
    """Whose bill it is, and the fee rate it states."""

    appid: str
    mchid: str
    fee_bps: int


@dataclass(frozen=True)
class _Line:
    """One detail line: its text columns and its amounts in fen."""

    moment: datetime
    texts: dict[str, str]
    settled: int = 0
    refunded: int = 0
    fee: int = 0
    ordered: int = 0
    asked: int = 0

    def values(self) -> list[str]:
        """The line's values in the bill's column order, unticked."""
        amounts = {
            "应结订单金额": self.settled,
            "退款金额": self.refunded,
            "手续费": self.fee,
            "订单金额": self.ordered,
            "申请退款金额": self.asked,
            "代金券金额": 0,
            "充值券退款金额": 0,
        }
        texts = self.texts | {name: _yuan(fen) for name, fen in amounts.items()}
        return [texts.get(column, "") for column in BILL_COLUMNS]


def fee_rate_text(fee_bps: int) -> str:
    """The fee rate as the bill writes it: 60 basis points is ``0.60%``."""
    return f"{fee_bps // 100}.{fee_bps % 100:02d}%"


def all_bill_text(
    book: OrderBook, day: date, account: BillAccount, trades: Mapping[str, WechatTrade]
) -> str:
    """The ALL bill of ``day`` (a Shanghai business day) from the simulator's book.

    ``trades`` gives each payment's trade type and payer; a payment missing from it is shown
    as an app payment.
    """
    lines = sorted(_detail_lines(book, day, account, trades), key=lambda line: line.moment)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BILL_COLUMNS)
    writer.writerows(_ticked(line.values()) for line in lines)
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerow(_ticked(_summary(lines)))
    return out.getvalue()


def write_all_bill(
    path: Path,
    book: OrderBook,
    day: date,
    account: BillAccount,
    trades: Mapping[str, WechatTrade],
) -> Path:
    """Write the ALL bill of ``day`` to ``path`` as UTF-8 without a byte-order mark.

    The real channel serves the bill the same way, a BOM-less UTF-8 body, so a reader must not
    expect the mark that spreadsheet exports add.
    """
    path.write_text(all_bill_text(book, day, account, trades), encoding="utf-8")
    return path


def _detail_lines(
    book: OrderBook, day: date, account: BillAccount, trades: Mapping[str, WechatTrade]
) -> list[_Line]:
    payments = [_payment_line(order, account, trades) for order in book.charges_on(day, SHANGHAI)]
    refunds = [
        _refund_line(order, refund, account, trades)
        for order, refund in book.refunds_on(day, SHANGHAI)
    ]
    return payments + refunds


def _payment_line(
    order: SimOrder, account: BillAccount, trades: Mapping[str, WechatTrade]
) -> _Line:
    texts = _common_texts(order, account, trades) | {
        "交易时间": _bill_time(order.created_at),
        "交易状态": "SUCCESS",
        "微信退款单号": "0",
        "商户退款单号": "0",
    }
    amount = order.amount_minor
    return _Line(order.created_at, texts, settled=amount, fee=order.fee_minor, ordered=amount)


def _refund_line(
    order: SimOrder, refund: SimRefund, account: BillAccount, trades: Mapping[str, WechatTrade]
) -> _Line:
    texts = _common_texts(order, account, trades) | {
        "交易时间": _bill_time(refund.created_at),
        "交易状态": "REFUND",
        "微信退款单号": refund.channel_ref,
        "商户退款单号": refund.refund_id,
        "退款类型": "ORIGINAL",
        "退款状态": "SUCCESS",
    }
    amount = refund.amount_minor
    fee_back = _fee_returned(order, refund)
    return _Line(refund.created_at, texts, refunded=amount, fee=-fee_back, asked=amount)


def _common_texts(
    order: SimOrder, account: BillAccount, trades: Mapping[str, WechatTrade]
) -> dict[str, str]:
    trade = trades.get(order.order_id)
    return {
        "公众账号ID": account.appid,
        "商户号": account.mchid,
        "特约商户号": "0",
        "微信订单号": order.channel_ref,
        "商户订单号": order.order_id,
        "用户标识": trade.request.openid if trade else payer_openid(order.order_id),
        "交易类型": trade.request.trade_type if trade else "APP",
        "付款银行": "OTHERS",
        "货币种类": order.currency,
        "商品名称": order.subject,
        "费率": fee_rate_text(account.fee_bps),
    }


def _fee_returned(order: SimOrder, refund: SimRefund) -> int:
    # The fee given back is the share of the payment's fee that the refunds so far cover,
    # less what earlier refunds gave back: a payment refunded in full returns its whole fee,
    # however many parts it was refunded in.
    position = order.refunds.index(refund)
    before = sum(earlier.amount_minor for earlier in order.refunds[:position])
    return _fee_share(order, before + refund.amount_minor) - _fee_share(order, before)


def _fee_share(order: SimOrder, refunded: int) -> int:
    # Rounded half up, in integers.
    return (2 * order.fee_minor * refunded + order.amount_minor) // (2 * order.amount_minor)


def _summary(lines: list[_Line]) -> list[str]:
    totals = (
        sum(line.settled for line in lines),
        sum(line.refunded for line in lines),
        0,
        sum(line.fee for line in lines),
        sum(line.ordered for line in lines),
        sum(line.asked for line in lines),
    )
    return [str(len(lines)), *(_yuan(total) for total in totals)]


def _bill_time(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}"


def _yuan(fen: int) -> str:
    return decimal_text(fen, CURRENCY)


def _ticked(values: list[str]) -> list[str]:
    return [TICK + value for value in values]
