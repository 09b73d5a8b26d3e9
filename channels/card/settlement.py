"""The card channel's daily settlement file, shaped like Stripe's itemized balance reports.

Stripe's "Balance change from activity" and payout reconciliation itemized reports list one
balance transaction a line: a ``charge`` with its gross, fee and net, a ``refund`` with a
negative gross and no fee (Stripe keeps the charge's fee). Amounts are decimal text in major
units, currencies lower case, times UTC as ``YYYY-MM-DD HH:MM:SS``, and the metadata we sent
appears in ``payment_metadata[…]`` and ``refund_metadata[…]`` columns. Declined charges moved no
money and are absent. The file is read back here too, into integer minor units.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from channels.card.book import charge_id, transaction_id
from channels.simulator import OrderBook, SimOrder, SimRefund
from events.money import decimal_text, parse_decimal_text

SETTLEMENT_COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "payment_intent_id",
    "customer_facing_amount",
    "customer_facing_currency",
    "description",
    "payment_metadata[order_id]",
    "refund_metadata[refund_id]",
)
# Funds become available for payout two days after the transaction (Stripe's standard
# schedule in many countries), at midnight UTC.
AVAILABLE_AFTER_DAYS = 2
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class SettlementRow:
    """One balance transaction, in integer minor units of an upper-case ISO currency."""

    balance_transaction_id: str
    created_utc: datetime
    available_on_utc: datetime
    currency: str
    gross_minor: int
    fee_minor: int
    net_minor: int
    reporting_category: str  # "charge" or "refund"
    source_id: str  # the ch_ or re_ id
    payment_intent_id: str
    customer_facing_amount_minor: int
    description: str
    order_id: str
    refund_id: str  # empty on charges


@dataclass(frozen=True)
class SettlementTotals:
    """The sums of one currency's rows."""

    currency: str
    count: int
    gross_minor: int
    fee_minor: int
    net_minor: int


def settlement_rows(book: OrderBook, day: date) -> list[SettlementRow]:
    """The day's (UTC) charges and refunds, in the order they happened."""
    charges = [_charge_row(order) for order in book.charges_on(day, _UTC_ZONE)]
    refunds = [_refund_row(order, refund) for order, refund in book.refunds_on(day, _UTC_ZONE)]
    return sorted(charges + refunds, key=lambda row: (row.created_utc, row.source_id))


def settlement_text(book: OrderBook, day: date) -> str:
    """The day's settlement file as CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SETTLEMENT_COLUMNS)
    writer.writerows(_cells(row) for row in settlement_rows(book, day))
    return buffer.getvalue()


def write_settlement(book: OrderBook, day: date, path: Path) -> Path:
    """Write the day's settlement file to ``path`` (UTF-8) and return the path."""
    path.write_text(settlement_text(book, day), encoding="utf-8")
    return path


def read_settlement(text: str) -> list[SettlementRow]:
    """The rows of a settlement file, amounts read exactly into minor units."""
    return [_parse_row(record) for record in csv.DictReader(io.StringIO(text))]


def settlement_totals(rows: Iterable[SettlementRow]) -> dict[str, SettlementTotals]:
    """Count, gross, fee and net of the rows, by currency."""
    totals: dict[str, SettlementTotals] = {}
    for row in rows:
        was = totals.get(row.currency, SettlementTotals(row.currency, 0, 0, 0, 0))
        totals[row.currency] = SettlementTotals(
            row.currency,
            was.count + 1,
            was.gross_minor + row.gross_minor,
            was.fee_minor + row.fee_minor,
            was.net_minor + row.net_minor,
        )
    return totals


def _available_on(created: datetime) -> datetime:
    day = created.astimezone(UTC).date() + timedelta(days=AVAILABLE_AFTER_DAYS)
    return datetime.combine(day, time(), UTC)


def _charge_row(order: SimOrder) -> SettlementRow:
    source = charge_id(order.channel_ref)
    return SettlementRow(
        balance_transaction_id=transaction_id(source),
        created_utc=order.created_at.astimezone(UTC),
        available_on_utc=_available_on(order.created_at),
        currency=order.currency,
        gross_minor=order.amount_minor,
        fee_minor=order.fee_minor,
        net_minor=order.amount_minor - order.fee_minor,
        reporting_category="charge",
        source_id=source,
        payment_intent_id=order.channel_ref,
        customer_facing_amount_minor=order.amount_minor,
        description=order.subject,
        order_id=order.order_id,
        refund_id="",
    )


def _refund_row(order: SimOrder, refund: SimRefund) -> SettlementRow:
    return SettlementRow(
        balance_transaction_id=transaction_id(refund.channel_ref),
        created_utc=refund.created_at.astimezone(UTC),
        available_on_utc=_available_on(refund.created_at),
        currency=order.currency,
        gross_minor=-refund.amount_minor,
        fee_minor=0,
        net_minor=-refund.amount_minor,
        reporting_category="refund",
        source_id=refund.channel_ref,
        payment_intent_id=order.channel_ref,
        customer_facing_amount_minor=refund.amount_minor,
        description="REFUND FOR CHARGE",
        order_id=order.order_id,
        refund_id=refund.refund_id,
    )


def _cells(row: SettlementRow) -> list[str]:
    def money(amount_minor: int) -> str:
        return decimal_text(amount_minor, row.currency)

    return [
        row.balance_transaction_id,
        row.created_utc.strftime(_TIME_FORMAT),
        row.available_on_utc.strftime(_TIME_FORMAT),
        row.currency.lower(),
        money(row.gross_minor),
        money(row.fee_minor),
        money(row.net_minor),
        row.reporting_category,
        row.source_id,
        row.payment_intent_id,
        money(row.customer_facing_amount_minor),
        row.currency.lower(),
        row.description,
        row.order_id,
        row.refund_id,
    ]


def _parse_row(record: dict[str, str]) -> SettlementRow:
    currency = record["currency"].upper()

    def minor(column: str) -> int:
        return parse_decimal_text(record[column], currency)

    return SettlementRow(
        balance_transaction_id=record["balance_transaction_id"],
        created_utc=_parse_time(record["created_utc"]),
        available_on_utc=_parse_time(record["available_on_utc"]),
        currency=currency,
        gross_minor=minor("gross"),
        fee_minor=minor("fee"),
        net_minor=minor("net"),
        reporting_category=record["reporting_category"],
        source_id=record["source_id"],
        payment_intent_id=record["payment_intent_id"],
        customer_facing_amount_minor=minor("customer_facing_amount"),
        description=record["description"],
        order_id=record["payment_metadata[order_id]"],
        refund_id=record["refund_metadata[refund_id]"],
    )


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
