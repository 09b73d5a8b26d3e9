"""Identity rules: how payment ids, event ids and Kafka keys are derived.

They are pure functions of the request, so a replayed or repeated command always maps to the
same payment and a redelivered event always carries the same id: consumers dedupe on it.
"""

from __future__ import annotations

import hashlib
import uuid

# Fixed forever: changing it would give every existing payment a new id.
PAYMENT_NAMESPACE = uuid.UUID("6f1c52a4-0b7e-5d2a-9a43-3c1f8e5d2b10")
_NAMESPACE_BYTES = PAYMENT_NAMESPACE.bytes


def idempotency_scope(merchant_id: str, idempotency_key: str) -> str:
    """The key under which a command is deduplicated (its payment id is derived from it)."""
    return f"{merchant_id}/{idempotency_key}"


def payment_id_for(merchant_id: str, idempotency_key: str) -> str:
    """The payment id a merchant's idempotency key maps to (UUIDv5, text form)."""
    return uuid5_text(idempotency_scope(merchant_id, idempotency_key))


def stage_event_id(payment_id: str, stage: str) -> str:
    """The id of the one event a stage emits for a payment, identical on every redelivery."""
    return derived_id(payment_id, stage)


def derived_id(*parts: str | int) -> str:
    """A deterministic id for anything identified by ``parts`` (a command, a log position)."""
    return uuid5_text(":".join(str(part) for part in parts))


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(PAYMENT_NAMESPACE, name))``, without building UUID objects.

    Every payment derives several ids; the standard library's route costs about 2.5 times this.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def refund_id_for(merchant_id: str, idempotency_key: str) -> str:
    """The refund id a merchant's refund idempotency key maps to (a repeat is the same refund)."""
    return derived_id("refund", merchant_id, idempotency_key)


def payout_id_for(merchant_id: str, idempotency_key: str) -> str:
    """The payout id a merchant's payout idempotency key maps to (a repeat is the same payout)."""
    return derived_id("payout", merchant_id, idempotency_key)
