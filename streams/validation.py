"""The first decision on a payment: is the request well formed and within limits?

Pure functions of the command and the policy, so they are tested without a broker and give the
same answer on every replay.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.identity import payment_id_for, stage_event_id
from events.money import is_known_currency
from events.records import (
    PaymentAccepted,
    PaymentRejected,
    RejectionReason,
    RequestPayment,
)
from paystream.config import PaystreamSettings

STAGE = "validation"
# Always used with fullmatch: "$" would also match before a trailing newline.
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_REGION = re.compile(r"[A-Z]{2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class ValidationPolicy:
    """Limits a request must respect, in minor units per currency."""

    max_amount_minor: int
    max_amount_minor_by_currency: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: PaystreamSettings) -> ValidationPolicy:
        """The policy configured by ``PAYSTREAM_MAX_AMOUNT_MINOR*``."""
        return cls(settings.max_amount_minor, dict(settings.max_amount_minor_by_currency))

    def max_for(self, currency: str) -> int:
        """Largest single payment allowed in ``currency``."""
        return self.max_amount_minor_by_currency.get(currency, self.max_amount_minor)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: a code and a sentence naming the field."""

    reason: RejectionReason
    detail: str


def _is_uuid(text: str) -> bool:
    # Only the canonical 8-4-4-4-12 text: braces, URNs and bare hex would not compare equal.
    return _UUID.fullmatch(text) is not None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _malformed(field_name: str, value: str, rule: str) -> Refusal:
    return Refusal(RejectionReason.MALFORMED_FIELD, f"{field_name} {value!r} is not {rule}")


def check_ids(command: RequestPayment) -> Refusal | None:
    """Refuse ids that downstream systems (channels, bills, SQL) could not carry safely."""
    if not _is_uuid(command.command_id):
        return _malformed("command_id", command.command_id, "a UUID")
    if not _IDEMPOTENCY_KEY.fullmatch(command.idempotency_key):
        return _malformed("idempotency_key", command.idempotency_key, "1-255 printable ASCII")
    reference_rule = "1-64 letters, digits or _.:@- starting with a letter or digit"
    for name in ("merchant_id", "order_id", "user_id"):
        value = getattr(command, name)
        if not _REFERENCE.fullmatch(value):
            return _malformed(name, value, reference_rule)
    return check_optional_fields(command)


def check_optional_fields(command: RequestPayment) -> Refusal | None:
    """Optional fields are checked only when present."""
    if command.channel is not None and not _REFERENCE.fullmatch(command.channel):
        return _malformed("channel", command.channel, "a channel id")
    if command.client_ip is not None and not _is_ip(command.client_ip):
        return _malformed("client_ip", command.client_ip, "an IPv4 or IPv6 address")
    if command.region is not None and not _REGION.fullmatch(command.region):
        return _malformed("region", command.region, "an ISO 3166-1 alpha-2 code")
    return None


def check_amount(command: RequestPayment, policy: ValidationPolicy) -> Refusal | None:
    """The amount must be positive, in a known currency, and within the configured maximum."""
    if not is_known_currency(command.currency):
        return Refusal(
            RejectionReason.UNKNOWN_CURRENCY,
            f"currency {command.currency!r} is not an ISO 4217 code with minor units",
        )
    if command.amount_minor <= 0:
        return Refusal(
            RejectionReason.AMOUNT_NOT_POSITIVE,
            f"amount_minor {command.amount_minor} must be greater than zero",
        )
    ceiling = policy.max_for(command.currency)
    if command.amount_minor > ceiling:
        return Refusal(
            RejectionReason.AMOUNT_OVER_MAXIMUM,
            f"amount_minor {command.amount_minor} {command.currency} exceeds the maximum "
            f"{ceiling} for a single payment",
        )
    return None


def validate_request(command: RequestPayment, policy: ValidationPolicy) -> Refusal | None:
    """The first reason to refuse ``command``, or None when it is acceptable."""
    if not command.merchant_id:
        return Refusal(RejectionReason.MERCHANT_MISSING, "merchant_id is empty")
    return check_ids(command) or check_amount(command, policy)


def _decision_fields(command: RequestPayment, now: datetime) -> dict[str, Any]:
    """What every decision on a request carries: its identity and what was asked for."""
    payment_id = payment_id_for(command.merchant_id, command.idempotency_key)
    return {
        "event_id": stage_event_id(payment_id, STAGE),
        "payment_id": payment_id,
        "occurred_at": now,
        "command_id": command.command_id,
        "idempotency_key": command.idempotency_key,
        "merchant_id": command.merchant_id,
        "order_id": command.order_id,
        "user_id": command.user_id,
        "amount_minor": command.amount_minor,
        "currency": command.currency,
    }


def decide(
    command: RequestPayment, policy: ValidationPolicy, now: datetime
) -> PaymentAccepted | PaymentRejected:
    """The validation stage's event for ``command``: accepted, or rejected with the reason."""
    refusal = validate_request(command, policy)
    if refusal is not None:
        return PaymentRejected(
            **_decision_fields(command, now),
            stage=STAGE,
            reason=refusal.reason,
            detail=refusal.detail,
        )
    return accept(command, now)


def accept(command: RequestPayment, now: datetime) -> PaymentAccepted:
    """The PaymentAccepted event carrying the whole request."""
    return PaymentAccepted(
        **_decision_fields(command, now),
        method=command.method,
        requested_channel=command.channel,
        description=command.description,
        device_id=command.device_id,
        client_ip=command.client_ip,
        account_fingerprint=command.account_fingerprint,
        region=command.region,
        metadata=dict(command.metadata),
    )
