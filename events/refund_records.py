"""Refunds: a merchant asks to give money back; the router checks it against what was captured
and sends it to the channel that captured it; the dispatcher reports what the channel did.

A refund's events are keyed by its payment's id on the payment log, so they read in order with
the payment's capture. ``PaymentRefunded`` (in ``events.records``) is the success.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import ClassVar

from events.records import AvroRecord


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestRefund(AvroRecord):
    """A merchant asks to give back all or part of a captured payment."""

    subject: ClassVar[str] = "paystream.commands.RequestRefund"

    command_id: str
    idempotency_key: str  # the refund id derives from it: a repeat is the same refund
    issued_at: datetime
    merchant_id: str
    payment_id: str
    amount_minor: int
    currency: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RefundRouted(AvroRecord):
    """A refund passed its checks and goes to the channel that captured the payment."""

    subject: ClassVar[str] = "paystream.payments.RefundRouted"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    refund_id: str
    command_id: str
    amount_minor: int
    currency: str
    captured_minor: int  # the payment's captured amount, which some channels want repeated
    refundable_minor: int  # what was left to refund before this one
    channel: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RefundRejected(AvroRecord):
    """A refund refused before any channel saw it, with the reason as a code."""

    subject: ClassVar[str] = "paystream.payments.RefundRejected"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    refund_id: str
    command_id: str
    amount_minor: int
    currency: str
    reason_code: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RefundFailed(AvroRecord):
    """The channel refused the refund: no money went back, and it may be asked for again."""

    subject: ClassVar[str] = "paystream.payments.RefundFailed"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    refund_id: str
    channel: str
    amount_minor: int
    currency: str
    code: str
    detail: str
