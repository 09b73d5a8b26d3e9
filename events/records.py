"""Typed commands and events, one class per Avro schema in ``schemas``.

Each class names its schema subject (the record's full Avro name); a test checks that the
fields match the newest schema version, so the classes cannot drift from the schemas.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from events.money import Money


class PaymentMethod(StrEnum):
    """How the user pays."""

    UNSPECIFIED = "UNSPECIFIED"
    ALIPAY = "ALIPAY"
    WECHAT_PAY = "WECHAT_PAY"
    CARD = "CARD"
    COINS = "COINS"


class RejectionReason(StrEnum):
    """Why a payment was refused, as a code that machines can act on."""

    UNSPECIFIED = "UNSPECIFIED"
    AMOUNT_NOT_POSITIVE = "AMOUNT_NOT_POSITIVE"
    AMOUNT_OVER_MAXIMUM = "AMOUNT_OVER_MAXIMUM"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    MERCHANT_MISSING = "MERCHANT_MISSING"
    MALFORMED_FIELD = "MALFORMED_FIELD"


def utc_now() -> datetime:
    """Now, in UTC, truncated to the millisecond the wire format keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


_FIELD_PLANS: dict[type, tuple[tuple[str, type[StrEnum] | None], ...]] = {}


def _field_plan(cls: type) -> tuple[tuple[str, type[StrEnum] | None], ...]:
    """Each field's name with its enum type (None for others), worked out once per class:
    records are converted by the thousand a second, and get_type_hints evaluates the string
    annotations."""
    plan = _FIELD_PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            (field.name, _enum_type(hints[field.name])) for field in dataclasses.fields(cls)
        )
        _FIELD_PLANS[cls] = plan
    return plan


def _enum_type(hint: Any) -> type[StrEnum] | None:
    return hint if isinstance(hint, type) and issubclass(hint, StrEnum) else None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AvroRecord:
    """Base of every record carried on Kafka: converts to and from Avro's dict form."""

    subject: ClassVar[str]
    # Schema fields the class does not have: its to_avro/from_avro derive them from its own.
    folded_fields: ClassVar[tuple[str, ...]] = ()
    # The schema's fields when the class's own are written in another shape altogether.
    wire_fields: ClassVar[tuple[str, ...] | None] = None

    def to_avro(self) -> dict[str, Any]:
        """The record as the dict fastavro writes."""
        return {
            name: getattr(self, name) if enum is None else str(getattr(self, name))
            for name, enum in _field_plan(type(self))
        }

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        """Build the record from the dict fastavro read (already resolved to our schema)."""
        values = {
            name: datum[name] if enum is None else enum(datum[name])
            for name, enum in _field_plan(cls)
        }
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestPayment(AvroRecord):
    """A merchant asks for a payment; see ``schemas/RequestPayment``."""

    subject: ClassVar[str] = "paystream.commands.RequestPayment"

    command_id: str
    idempotency_key: str
    issued_at: datetime
    merchant_id: str
    order_id: str
    user_id: str
    amount_minor: int
    currency: str
    method: PaymentMethod = PaymentMethod.UNSPECIFIED
    channel: str | None = None
    description: str | None = None
    device_id: str | None = None
    client_ip: str | None = None
    account_fingerprint: str | None = None
    region: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PaymentAccepted(AvroRecord):
    """A request passed validation and became a payment; carries the whole request."""

    subject: ClassVar[str] = "paystream.payments.PaymentAccepted"

    event_id: str
    payment_id: str
    occurred_at: datetime
    command_id: str
    idempotency_key: str
    merchant_id: str
    order_id: str
    user_id: str
    amount_minor: int
    currency: str
    method: PaymentMethod
    requested_channel: str | None = None
    description: str | None = None
    device_id: str | None = None
    client_ip: str | None = None
    account_fingerprint: str | None = None
    region: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def money(self) -> Money:
        """The accepted amount."""
        return Money(self.amount_minor, self.currency)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRejected(AvroRecord):
    """A payment was refused with a reason code and a human-readable detail."""

    subject: ClassVar[str] = "paystream.payments.PaymentRejected"

    event_id: str
    payment_id: str
    occurred_at: datetime
    command_id: str
    idempotency_key: str
    merchant_id: str
    order_id: str
    user_id: str
    amount_minor: int
    currency: str
    stage: str
    reason: RejectionReason
    detail: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CommandDeduplicated(AvroRecord):
    """A command reused an idempotency key and changed nothing."""

    subject: ClassVar[str] = "paystream.payments.CommandDeduplicated"

    event_id: str
    payment_id: str
    occurred_at: datetime
    command_id: str
    original_command_id: str
    idempotency_key: str
    merchant_id: str
    request_matches: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter(AvroRecord):
    """A message that could not be processed, kept whole with the reason."""

    subject: ClassVar[str] = "paystream.ops.DeadLetter"

    dead_letter_id: str
    failed_at: datetime
    processor: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    payload: bytes
    error_type: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRefunded(AvroRecord):
    """Money of a captured payment went back to the user (all or part of it)."""

    subject: ClassVar[str] = "paystream.payments.PaymentRefunded"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    refund_id: str
    amount_minor: int
    currency: str
    channel: str | None = None  # the channel that gave the money back (v2)
    channel_ref: str | None = None  # its id of the refund (v2)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChargebackReceived(AvroRecord):
    """The user's bank disputed a payment and took the money back from the merchant."""

    subject: ClassVar[str] = "paystream.payments.ChargebackReceived"

    event_id: str
    payment_id: str
    occurred_at: datetime
    merchant_id: str
    chargeback_id: str
    amount_minor: int
    currency: str
    reason_code: str


PaymentEvent = PaymentAccepted | PaymentRejected | CommandDeduplicated
