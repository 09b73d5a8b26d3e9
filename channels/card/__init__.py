"""The card channel in Stripe's API shape: adapter, simulator, webhook signing, settlement file."""

from channels.card.adapter import CardAdapter
from channels.card.replies import CARD_ERROR_CODES
from channels.card.settlement import (
    SETTLEMENT_COLUMNS,
    SettlementRow,
    SettlementTotals,
    read_settlement,
    settlement_rows,
    settlement_text,
    settlement_totals,
    write_settlement,
)
from channels.card.simulator import CardSimulator
from channels.card.webhooks import WebhookSender, webhook_schedule

__all__ = [
    "CARD_ERROR_CODES",
    "SETTLEMENT_COLUMNS",
    "CardAdapter",
    "CardSimulator",
    "SettlementRow",
    "SettlementTotals",
    "WebhookSender",
    "read_settlement",
    "settlement_rows",
    "settlement_text",
    "settlement_totals",
    "webhook_schedule",
    "write_settlement",
]
