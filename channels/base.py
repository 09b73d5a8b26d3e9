"""What every channel adapter offers the dispatcher, in the channels' common terms.

An adapter converts these protocol-neutral orders into one channel's own protocol (its
signatures, field names, amounts in major units) and the channel's answers back into replies.
Our payment id is the channel's order number and idempotency key, so asking twice can never
capture twice. An adapter never guesses: when it cannot tell what happened (a timeout, an
answer it cannot read, a 5xx), the reply is UNKNOWN and the dispatcher settles it by query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class AttemptOutcome(StrEnum):
    """What a channel call achieved, as far as the channel told us."""

    SUCCEEDED = "SUCCEEDED"  # the money moved (captured, refunded or paid out)
    FAILED = "FAILED"  # the money did not move; the reply's code says whether to try elsewhere
    PENDING = "PENDING"  # the channel took the order; the result comes by notification or query
    UNKNOWN = "UNKNOWN"  # no answer we can trust: query before doing anything else


class ErrorClass(StrEnum):
    """How the dispatcher treats a channel's failure code."""

    RETRYABLE = "RETRYABLE"  # nothing moved, and another channel may try
    FINAL = "FINAL"  # nothing moved, and no channel should try again (the user's card declined)
    UNKNOWN = "UNKNOWN"  # the code does not say whether money moved: settle by query


@dataclass(frozen=True)
class ErrorCodeMap:
    """One channel's failure codes by class; a code the map does not know is UNKNOWN.

    ``absent`` are the codes of a status query that mean the channel has no record of the
    order at all (it never arrived), as opposed to a record of its failure.
    """

    codes: Mapping[str, ErrorClass]
    absent: frozenset[str] = frozenset()

    def classify(self, code: str | None) -> ErrorClass:
        """The class of ``code`` (None, no code at all, is UNKNOWN)."""
        if code is None:
            return ErrorClass.UNKNOWN
        return self.codes.get(code, ErrorClass.UNKNOWN)

    def means_absent(self, code: str | None) -> bool:
        """Whether a query's ``code`` says the channel never saw the order."""
        return code in self.absent


@dataclass(frozen=True)
class ChargeOrder:
    """Take ``amount_minor`` of ``currency`` from the user for a merchant's order."""

    order_id: str  # our payment id: the channel's order number and idempotency key
    merchant_id: str
    amount_minor: int
    currency: str
    subject: str  # what the user sees on their statement
    notify_url: str  # where the channel sends its asynchronous notification


@dataclass(frozen=True)
class RefundOrder:
    """Give ``amount_minor`` of a captured order back to the user (all of it or a part)."""

    order_id: str  # the captured payment
    refund_id: str  # our refund id: the channel's refund number and idempotency key
    amount_minor: int
    currency: str
    total_minor: int  # the captured amount, which some channels want repeated
    reason: str
    notify_url: str


@dataclass(frozen=True)
class PayoutOrder:
    """Send ``amount_minor`` of ``currency`` from the platform's account to a payee's (a
    creator or a shop withdrawing what it earned)."""

    payout_id: str  # our payout id: the channel's transfer number and idempotency key
    payee_account: str  # the payee's account on this channel (login id, openid, account id)
    payee_name: str  # the payee's real name, which channels check against the account
    amount_minor: int
    currency: str
    remark: str  # what the payee sees


@dataclass(frozen=True)
class ChannelReply:
    """A channel's answer to a charge, a refund or a status query."""

    outcome: AttemptOutcome
    channel_ref: str | None = None  # the channel's own transaction id, once it has one
    code: str | None = None  # the channel's failure code (or "TIMEOUT", "UNREADABLE")
    message: str = ""
    amount_minor: int | None = None  # what the channel says moved, when it says


class NoticeKind(StrEnum):
    """What an asynchronous notification is about."""

    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    PAYOUT = "PAYOUT"


@dataclass(frozen=True)
class ChannelNotice:
    """A verified, decoded asynchronous notification."""

    channel: str
    kind: NoticeKind
    order_id: str
    outcome: AttemptOutcome
    channel_ref: str
    amount_minor: int
    currency: str
    occurred_at: datetime
    refund_id: str | None = None  # for a REFUND; for a PAYOUT, our payout id
    # The channel's own id of this notification, when it has one (WeChat's `id`, Stripe's
    # event id), so a repeated notification can be recognised.
    notice_id: str | None = None


class NoticeRefused(ValueError):
    """A notification that failed verification or could not be read; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NoticeAnswer:
    """The HTTP answer a channel expects to a notification (its own convention)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class ChannelAdapter(Protocol):
    """One channel, spoken in its own protocol over HTTP."""

    name: str
    error_codes: ErrorCodeMap

    async def charge(self, order: ChargeOrder) -> ChannelReply:
        """Ask the channel to take the money; never raises for a channel's failure."""
        ...

    async def query(self, order_id: str) -> ChannelReply:
        """Ask the channel what became of a charge."""
        ...

    async def refund(self, order: RefundOrder) -> ChannelReply:
        """Ask the channel to give money back."""
        ...

    async def payout(self, order: PayoutOrder) -> ChannelReply:
        """Ask the channel to transfer money to a payee."""
        ...

    async def query_payout(self, payout_id: str) -> ChannelReply:
        """Ask the channel what became of a payout (FAILED with an ``absent`` code when it has
        no record of it)."""
        ...

    def read_notice(self, headers: Mapping[str, str], body: bytes) -> ChannelNotice:
        """Verify and decode a notification; raises NoticeRefused with the reason."""
        ...

    def acknowledge(self) -> NoticeAnswer:
        """The answer that stops the channel re-sending a notification."""
        ...

    def refuse(self, reason: str) -> NoticeAnswer:
        """The answer to a notification we could not accept (the channel will re-send)."""
        ...

    async def close(self) -> None:
        """Release the adapter's HTTP session."""
        ...
