"""Payment intake: validate each RequestPayment once per idempotency key.

``PaymentIntake`` holds the logic over any store of seen keys (a dict in tests); the intake
processor in ``streams.app`` gives it a changelogged state store so the memory survives
restarts and moves with its partition to another worker.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Protocol

from events.identity import derived_id, idempotency_scope, payment_id_for
from events.records import (
    CommandDeduplicated,
    PaymentAccepted,
    PaymentRejected,
    RequestPayment,
)
from streams.validation import ValidationPolicy, decide

IntakeOutcome = PaymentAccepted | PaymentRejected | CommandDeduplicated
FirstUse = dict[str, str]


class SeenKeys(Protocol):
    """Where the first use of each idempotency scope is remembered."""

    def get(self, key: str, /) -> FirstUse | None:
        """The first use of ``key``, or None."""
        ...

    def __setitem__(self, key: str, value: FirstUse, /) -> None:
        """Remember the first use of ``key``."""
        ...


# Fields that say what was asked for; ids and timestamps differ between honest retries.
_REQUEST_FIELDS = (
    "merchant_id",
    "order_id",
    "user_id",
    "amount_minor",
    "currency",
    "method",
    "channel",
)


def request_fingerprint(command: RequestPayment) -> str:
    """A digest of what the command asks for, to tell an honest retry from a reused key."""
    asked = {name: str(getattr(command, name)) for name in _REQUEST_FIELDS}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


class PaymentIntake:
    """Turns commands into their validation outcome, suppressing repeated idempotency keys."""

    def __init__(self, policy: ValidationPolicy, seen: SeenKeys) -> None:
        self._policy = policy
        self._seen = seen

    def handle(self, command: RequestPayment, now: datetime) -> IntakeOutcome:
        """The one event ``command`` produces on the payment log."""
        scope = idempotency_scope(command.merchant_id, command.idempotency_key)
        first = self._seen.get(scope)
        # The same command redelivered after a crash is decided again (with the same event id):
        # its table entry may have reached the changelog while its decision did not.
        if first is not None and first["command_id"] != command.command_id:
            return self._deduplicated(command, first, now)
        outcome = decide(command, self._policy, now)
        self._seen[scope] = {
            "command_id": command.command_id,
            "fingerprint": request_fingerprint(command),
        }
        return outcome

    def _deduplicated(
        self, command: RequestPayment, first: FirstUse, now: datetime
    ) -> CommandDeduplicated:
        return CommandDeduplicated(
            event_id=derived_id(command.command_id, "deduplicated"),
            payment_id=payment_id_for(command.merchant_id, command.idempotency_key),
            occurred_at=now,
            command_id=command.command_id,
            original_command_id=first["command_id"],
            idempotency_key=command.idempotency_key,
            merchant_id=command.merchant_id,
            request_matches=first["fingerprint"] == request_fingerprint(command),
        )
