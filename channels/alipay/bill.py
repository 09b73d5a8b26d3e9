"""The daily ``trade`` bill (业务明细), laid out as the channel's own.

``#`` preamble lines (account, start and end of the day), the header of Chinese column names,
one detail row per capture (业务类型 交易) and per refund (业务类型 退款, negative amounts, the
refund's request number in 退款批次号/请求号), then ``#`` summary lines with the totals. Amounts
are yuan text; the channel's files are GBK-encoded CSV with CRLF line ends.
"""

# The channel's column names and summary lines are written with full-width punctuation.
# ruff: noqa: RUF001

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path

from channels.alipay.protocol import CURRENCY, SHANGHAI, TIME_FORMAT
from channels.simulator import OrderBook, SimOrder, SimRefund
from events.money import decimal_text, parse_decimal_text

BILL_COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
TRADE = "交易"
REFUND = "退款"
BILL_ENCODING = "gbk"
LINE_END = "\r\n"
COUNTERPARTY = "pay***@example.com"

_ZERO = "0.00"
_RULE = "-" * 41
_DAY_FORMAT = "%Y年%m月%d日 %H:%M:%S"


def trade_bill_text(book: OrderBook, day: date, *, account: str, exported_at: datetime) -> str:
    """The trade bill of ``day`` (Beijing time): captures and refunds completed that day."""
    completed = BILL_COLUMNS.index("完成时间")
    rows = sorted(
        _capture_rows(book, day) + _refund_rows(book, day), key=lambda row: row[completed]
    )
    lines = [
        *_preamble(day, account),
        _csv_line(BILL_COLUMNS),
        *(_csv_line(row) for row in rows),
        *_summary(rows, exported_at),
    ]
    return "".join(line + LINE_END for line in lines)


def write_trade_bill(
    path: Path, book: OrderBook, day: date, *, account: str, exported_at: datetime
) -> Path:
    """Write the trade bill of ``day`` to ``path`` in GBK, as the channel's files are."""
    text = trade_bill_text(book, day, account=account, exported_at=exported_at)
    # A character GBK lacks (an emoji in a subject) is lost in the channel's files too.
    path.write_bytes(text.encode(BILL_ENCODING, errors="replace"))
    return path


def bill_file_name(account: str, day: date) -> str:
    """The detail file's name inside the channel's bill archive."""
    return f"{account}_{day:%Y%m%d}_业务明细.csv"


def bill_rows(text: str) -> list[dict[str, str]]:
    """The detail rows of a bill's text, by column name (the ``#`` lines left out)."""
    body = [line for line in io.StringIO(text, newline="") if not line.startswith("#")]
    return list(csv.DictReader(body))


def _preamble(day: date, account: str) -> list[str]:
    start = datetime.combine(day, time(), SHANGHAI)
    end = start + timedelta(days=1)
    return [
        "#支付宝业务明细查询",
        f"#账号：[{account}]",
        f"#起始日期：[{start:{_DAY_FORMAT}}]   终止日期：[{end:{_DAY_FORMAT}}]",
        f"#{_RULE}业务明细列表{_RULE}",
    ]


def _summary(rows: list[list[str]], exported_at: datetime) -> list[str]:
    local = exported_at.astimezone(SHANGHAI)
    return [
        f"#{_RULE}业务明细列表结束{_RULE}",
        _total_line("交易合计", [row for row in rows if row[2] == TRADE]),
        _total_line("退款合计", [row for row in rows if row[2] == REFUND]),
        f"#导出时间：[{local:{_DAY_FORMAT}}]",
    ]


def _total_line(label: str, rows: list[list[str]]) -> str:
    received = _column_total(rows, "商家实收（元）")
    discount = _column_total(rows, "商家优惠（元）")
    fees = _column_total(rows, "服务费（元）")
    amounts = f"商家实收：￥{received}元，商家优惠：￥{discount}元，服务费：￥{fees}元"
    return f"#{label}：{len(rows)}笔，{amounts}"


def _column_total(rows: list[list[str]], column: str) -> str:
    index = BILL_COLUMNS.index(column)
    return _yuan(sum(parse_decimal_text(row[index], CURRENCY) for row in rows))


def _capture_rows(book: OrderBook, day: date) -> list[list[str]]:
    return [
        _detail_row(order, TRADE, order.amount_minor, order.fee_minor, order.created_at)
        for order in book.charges_on(day, SHANGHAI)
    ]


def _refund_rows(book: OrderBook, day: date) -> list[list[str]]:
    return [_refund_row(order, refund) for order, refund in book.refunds_on(day, SHANGHAI)]


def _refund_row(order: SimOrder, refund: SimRefund) -> list[str]:
    # The simulated channel keeps its fee when money goes back: a refund row's fee is zero.
    row = _detail_row(order, REFUND, -refund.amount_minor, 0, refund.created_at)
    row[BILL_COLUMNS.index("退款批次号/请求号")] = refund.refund_id
    return row


def _detail_row(
    order: SimOrder, business: str, amount_minor: int, fee_minor: int, completed: datetime
) -> list[str]:
    cells = dict.fromkeys(BILL_COLUMNS, "")
    cells.update(
        {
            "支付宝交易号": order.channel_ref,
            "商户订单号": order.order_id,
            "业务类型": business,
            "商品名称": order.subject,
            "创建时间": _local_time(order.created_at),
            "完成时间": _local_time(completed),
            "对方账户": COUNTERPARTY,
            "订单金额（元）": _yuan(amount_minor),
            "商家实收（元）": _yuan(amount_minor),
            "服务费（元）": _yuan(fee_minor),
        }
    )
    for column in _ZERO_COLUMNS:
        cells[column] = _ZERO
    return [cells[column] for column in BILL_COLUMNS]


_ZERO_COLUMNS = (
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "分润（元）",
)


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(list(cells))
    return buffer.getvalue()


def _local_time(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime(TIME_FORMAT)


def _yuan(amount_minor: int) -> str:
    return decimal_text(amount_minor, CURRENCY)
