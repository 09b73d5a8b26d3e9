"""Refunds at the router: only against captured money, never above what is left.

The desk keeps, per captured payment, its channel, its captured amount and its refunds (a
changelogged store keyed by payment id, in the partition of the payment's log). A refund
command is checked against it; one that passes is routed back to the channel that captured the
payment (money goes back the way it came) and holds its amount until the channel answers: a
refund that fails gives it back, one that succeeds keeps it. The refund id derives from the
merchant and the command's idempotency key, so a repeated command is the same refund.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from events.identity import derived_id, refund_id_for
from events.records import PaymentRefunded
from events.refund_records import RefundFailed, RefundRejected, RefundRouted, RequestRefund
from events.routing_records import PaymentCaptured
from events.topics import TopicCatalogue
from streams.engine.outgoing import Outgoing

Capture = dict[str, Any]
# The states of one refund in a capture's entry.
HELD, REFUNDED, FAILED = "held", "refunded", "failed"


class RefundRefusal(StrEnum):
    """Why a refund was refused before any channel saw it."""

    NOT_CAPTURED = "NOT_CAPTURED"
    MERCHANT_MISMATCH = "MERCHANT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    AMOUNT_NOT_POSITIVE = "AMOUNT_NOT_POSITIVE"
    OVER_REFUNDABLE = "OVER_REFUNDABLE"


def refundable(capture: Capture) -> int:
    """What is left to refund: the captured amount less refunds made or under way."""
    taken: int = sum(amount for amount, state in capture["refunds"].values() if state != FAILED)
    return int(capture["captured"]) - taken


class RefundDesk:
    """Checks refund commands against captures and routes them to the capturing channel."""

    def __init__(self, captures: MutableMapping[str, Capture], topics: TopicCatalogue) -> None:
        self._captures = captures
        self._topics = topics

    def on_captured(self, captured: PaymentCaptured) -> None:
        """Remember a capture (once: a replayed capture changes nothing)."""
        if captured.payment_id in self._captures:
            return
        self._captures[captured.payment_id] = {
            "merchant": captured.merchant_id,
            "channel": captured.channel,
            "currency": captured.currency,
            "captured": captured.amount_minor,
            "refunds": {},
        }

    def on_request(self, command: RequestRefund, now: datetime) -> list[Outgoing]:
        """Route the refund to the capturing channel, or refuse it with the reason."""
        refund_id = refund_id_for(command.merchant_id, command.idempotency_key)
        capture = self._captures.get(command.payment_id)
        if capture is not None and refund_id in capture["refunds"]:
            return []  # the same refund asked again: it is routed (or done) already
        refusal, detail = _check(command, capture)
        if refusal is not None:
            return [self._logged(_rejected(command, refund_id, refusal, detail, now))]
        assert capture is not None
        left = refundable(capture)
        capture["refunds"][refund_id] = [command.amount_minor, HELD]
        self._captures[command.payment_id] = capture
        return [self._logged(_routed(command, refund_id, capture, left, now))]

    def on_refunded(self, refunded: PaymentRefunded) -> None:
        """The channel gave the money back: the refund's amount stays taken."""
        self._settle(refunded.payment_id, refunded.refund_id, REFUNDED)

    def on_failed(self, failed: RefundFailed) -> None:
        """The channel refused the refund: its amount is refundable again."""
        self._settle(failed.payment_id, failed.refund_id, FAILED)

    def _settle(self, payment_id: str, refund_id: str, state: str) -> None:
        capture = self._captures.get(payment_id)
        if capture is None or refund_id not in capture["refunds"]:
            return
        capture["refunds"][refund_id][1] = state
        self._captures[payment_id] = capture

    def _logged(self, record: RefundRouted | RefundRejected) -> Outgoing:
        return Outgoing(self._topics.events.name, record.payment_id.encode(), record)


def _check(command: RequestRefund, capture: Capture | None) -> tuple[RefundRefusal | None, str]:
    if capture is None:
        return RefundRefusal.NOT_CAPTURED, "no capture of this payment is known"
    if capture["merchant"] != command.merchant_id:
        return RefundRefusal.MERCHANT_MISMATCH, "the payment belongs to another merchant"
    if capture["currency"] != command.currency:
        return RefundRefusal.CURRENCY_MISMATCH, f"the payment was in {capture['currency']}"
    if command.amount_minor <= 0:
        return RefundRefusal.AMOUNT_NOT_POSITIVE, "a refund must be more than zero"
    left = refundable(capture)
    if command.amount_minor > left:
        return RefundRefusal.OVER_REFUNDABLE, f"only {left} minor units are left to refund"
    return None, ""


def _routed(
    command: RequestRefund, refund_id: str, capture: Capture, left: int, now: datetime
) -> RefundRouted:
    return RefundRouted(
        event_id=derived_id(refund_id, "routed"),
        payment_id=command.payment_id,
        occurred_at=now,
        merchant_id=command.merchant_id,
        refund_id=refund_id,
        command_id=command.command_id,
        amount_minor=command.amount_minor,
        currency=command.currency,
        captured_minor=int(capture["captured"]),
        refundable_minor=left,
        channel=capture["channel"],
        reason=command.reason,
    )


def _rejected(
    command: RequestRefund, refund_id: str, refusal: RefundRefusal, detail: str, now: datetime
) -> RefundRejected:
    return RefundRejected(
        event_id=derived_id(refund_id, "rejected", command.command_id),
        payment_id=command.payment_id,
        occurred_at=now,
        merchant_id=command.merchant_id,
        refund_id=refund_id,
        command_id=command.command_id,
        amount_minor=command.amount_minor,
        currency=command.currency,
        reason_code=str(refusal),
        detail=detail,
    )
