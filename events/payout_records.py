"""Payouts: a shop or a creator withdraws what it earned to its account on a channel.

A payout's events are keyed by its merchant's id, on ``<ns>.payouts.commands`` and
``<ns>.payouts.events``: a merchant's payouts are read in order in one partition, which is
where its withdrawals of the day are summed against its limits.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import ClassVar

from events.records import AvroRecord


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestPayout(AvroRecord):
    """A merchant asks to withdraw money to its own account on a payout channel."""

    subject: ClassVar[str] = "paystream.commands.RequestPayout"

    command_id: str
    idempotency_key: str  # the payout id derives from it: a repeat is the same payout
    issued_at: datetime
    merchant_id: str
    channel: str  # the channel the payee's account is on
    payee_account: str
    payee_name: str
    amount_minor: int
    currency: str
    remark: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PayoutRouted(AvroRecord):
    """A payout passed risk control (the limits it was checked against, with the values) and
    goes to the payee's channel."""

    subject: ClassVar[str] = "paystream.payouts.PayoutRouted"

    event_id: str
    payout_id: str
    occurred_at: datetime
    merchant_id: str
    command_id: str
    channel: str
    payee_account: str
    payee_name: str
    amount_minor: int
    currency: str
    remark: str
    merchant_rating: str
    limits: dict[str, int]  # the limits checked, by name
    paid_today_minor: int  # the merchant's payouts of the business day before this one


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PayoutRejected(AvroRecord):
    """A payout refused before any channel saw it, with the reason as a code."""

    subject: ClassVar[str] = "paystream.payouts.PayoutRejected"

    event_id: str
    payout_id: str
    occurred_at: datetime
    merchant_id: str
    command_id: str
    amount_minor: int
    currency: str
    reason_code: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PayoutCompleted(AvroRecord):
    """The channel paid the payee."""

    subject: ClassVar[str] = "paystream.payouts.PayoutCompleted"

    event_id: str
    payout_id: str
    occurred_at: datetime
    merchant_id: str
    channel: str
    channel_ref: str
    amount_minor: int
    currency: str
    settled_by: str  # reply | notification | query


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PayoutFailed(AvroRecord):
    """The channel did not pay the payee, and will not under this payout id."""

    subject: ClassVar[str] = "paystream.payouts.PayoutFailed"

    event_id: str
    payout_id: str
    occurred_at: datetime
    merchant_id: str
    channel: str
    amount_minor: int
    currency: str
    code: str
    detail: str
