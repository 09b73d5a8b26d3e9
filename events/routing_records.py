"""Routing and dispatch events: which channel a payment goes to, and what the channels said.

Every event of one payment is keyed by its payment id on the payment log, so its routing
decision, each attempt on a channel, the channel's notifications and its final outcome read in
order in one partition. ``ChannelObservation`` and ``ChannelUsage`` are the routers' shared
feedback (service metrics and quota usage), read whole by every router.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, ClassVar, Self

from events.records import AvroRecord, PaymentMethod


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteCandidate(AvroRecord):
    """One channel the router considered, with what it knew of it and why it lost or won."""

    subject: ClassVar[str] = "paystream.payments.RouteCandidate"

    channel: str
    fee_minor: int | None
    success_rate_bp: int | None  # estimated success rate, basis points
    latency_ms: int | None  # estimated latency
    eliminated: str | None  # why it could not be chosen; None when it could
    note: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRouted(AvroRecord):
    """The router chose a channel (or none), explained: every candidate and why the winner won."""

    subject: ClassVar[str] = "paystream.payments.PaymentRouted"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    amount_minor: int
    currency: str
    method: PaymentMethod
    channel: str | None  # None: no channel can take the payment
    fallbacks: list[str]  # where a retryable failure goes next, in order
    reason_code: str
    reason: str
    policy_version: int
    candidates: list[RouteCandidate]

    def to_avro(self) -> dict[str, Any]:
        """The record as the dict fastavro writes, nested candidates included."""
        datum = super(PaymentRouted, self).to_avro()
        datum["candidates"] = [candidate.to_avro() for candidate in self.candidates]
        return datum

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """Build the record, nested candidates included, from fastavro's dict."""
        record = super(PaymentRouted, cls).from_avro(datum)
        candidates = [RouteCandidate.from_avro(item) for item in datum["candidates"]]
        return dataclasses.replace(record, candidates=candidates)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAttemptFailed(AvroRecord):
    """A channel did not take the money; ``error_class`` says whether another channel may try."""

    subject: ClassVar[str] = "paystream.payments.ChannelAttemptFailed"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    channel: str
    attempt: int
    code: str
    error_class: str  # RETRYABLE | FINAL | UNKNOWN settled as failed by a query
    message: str
    latency_ms: int
    next_channel: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAttemptPending(AvroRecord):
    """A charge whose result is not known yet: PENDING (the channel will tell) or UNKNOWN (a
    timeout or an unreadable answer). The payment stays so until a notification or a query
    settles it; nothing is guessed."""

    subject: ClassVar[str] = "paystream.payments.ChannelAttemptPending"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    channel: str
    attempt: int
    status: str  # PENDING | UNKNOWN
    code: str | None
    detail: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCaptured(AvroRecord):
    """The channel took the money: the payment succeeded."""

    subject: ClassVar[str] = "paystream.payments.PaymentCaptured"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    channel: str
    channel_ref: str
    amount_minor: int
    currency: str
    fee_minor: int  # the channel's fee as the routing policy prices it
    attempt: int
    settled_by: str  # reply | notification | query


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFailed(AvroRecord):
    """No channel took the money, and none will: the payment ended without a capture."""

    subject: ClassVar[str] = "paystream.payments.PaymentFailed"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    amount_minor: int
    currency: str
    reason_code: str
    detail: str
    channels_tried: list[str]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelNotified(AvroRecord):
    """A channel's asynchronous notification, verified and decoded, as it came in."""

    subject: ClassVar[str] = "paystream.payments.ChannelNotified"

    event_id: str
    payment_id: str
    occurred_at: datetime
    channel: str
    kind: str  # PAYMENT | REFUND
    outcome: str  # SUCCEEDED | FAILED | PENDING
    channel_ref: str
    amount_minor: int
    currency: str
    refund_id: str | None
    notice_id: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelObservation(AvroRecord):
    """Feedback for the routers: one attempt's result on a channel, for its service metrics."""

    subject: ClassVar[str] = "paystream.routing.ChannelObservation"

    event_id: str
    occurred_at: datetime
    channel: str
    succeeded: bool
    timed_out: bool
    latency_ms: int
    # The payer's side refused (a card declined): the channel answered, so a run of these does
    # not take it out of service, though its success rate counts them.
    declined: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelUsage(AvroRecord):
    """Feedback for the routers: a payment routed to a channel counts against its quotas."""

    subject: ClassVar[str] = "paystream.routing.ChannelUsage"

    event_id: str
    occurred_at: datetime
    channel: str
    merchant_id: str
    amount_minor: int
    currency: str
    business_date: str
    router: str  # the router instance that counted it already


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoutingPolicyPublished(AvroRecord):
    """A routing policy version was published; the newest is live on every router."""

    subject: ClassVar[str] = "paystream.routing.RoutingPolicyPublished"

    event_id: str
    occurred_at: datetime
    version: int
    digest: str  # SHA-256 of the text
    text: str  # the policy file, as published
    published_by: str
