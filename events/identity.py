"""Identity rules: how payment ids, event ids and Kafka keys are derived.

They are pure functions of the request, so a replayed or repeated command always maps to the
same payment and a redelivered event always carries the same id: consumers dedupe on it.
"""

from __future__ import annotations

import uuid

# Fixed forever: changing it would give every existing payment a new id.
PAYMENT_NAMESPACE = uuid.UUID("6f1c52a4-0b7e-5d2a-9a43-3c1f8e5d2b10")


def idempotency_scope(merchant_id: str, idempotency_key: str) -> str:
    """The key under which a command is deduplicated (its payment id is derived from it)."""
    return f"{merchant_id}/{idempotency_key}"


def payment_id_for(merchant_id: str, idempotency_key: str) -> str:
    """The payment id a merchant's idempotency key maps to (UUIDv5, text form)."""
    return str(uuid.uuid5(PAYMENT_NAMESPACE, idempotency_scope(merchant_id, idempotency_key)))


def stage_event_id(payment_id: str, stage: str) -> str:
    """The id of the one event a stage emits for a payment, identical on every redelivery."""
    return derived_id(payment_id, stage)


def derived_id(*parts: str | int) -> str:
    """A deterministic id for anything identified by ``parts`` (a command, a log position)."""
    return str(uuid.uuid5(PAYMENT_NAMESPACE, ":".join(str(part) for part in parts)))
