"""Stripe's answers and events, read into the channels' common terms.

A PaymentIntent's ``status`` says whether money moved; a failure's ``decline_code`` (the
issuer's reason) is more telling than its ``code``, which is more telling than its error
``type``, so a reply carries the most specific of them that the error-code map knows. A
Transfer (a payout to a connected account) exists only once its money moved, so finding one
is success and finding none means nothing was paid. Anything this module cannot read is
UNKNOWN: the dispatcher settles it by query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from channels.base import (
    AttemptOutcome,
    ChannelNotice,
    ChannelReply,
    ErrorClass,
    ErrorCodeMap,
    NoticeKind,
    NoticeRefused,
    PayoutOrder,
)

API_VERSION = "2024-06-20"  # the version whose answer shapes this module reads
TIMEOUT = "TIMEOUT"  # no answer within the adapter's timeout
UNREADABLE = "UNREADABLE"  # an answer that is not the JSON Stripe sends
DISCONNECTED = "DISCONNECTED"  # the connection broke after the request may have arrived
UNREACHABLE = "UNREACHABLE"  # the request never left: nothing can have happened
NOT_FOUND = "resource_missing"  # Stripe's code for an object that does not exist
BALANCE_INSUFFICIENT = "balance_insufficient"  # the platform's available balance is too low
# Stripe names a destination that does not exist only by ``resource_missing`` on the
# ``destination`` parameter; a payout reports it as this code, which names the account.
PAYEE_INVALID = "account_invalid"
PAYEE_REFUSED = "transfers_not_allowed"  # the connected account cannot take transfers now

_FINAL = ErrorClass.FINAL
_RETRYABLE = ErrorClass.RETRYABLE
_UNKNOWN = ErrorClass.UNKNOWN

# The issuer or Stripe declined the card: no channel will get a different answer for it.
_CARD_DECLINES = (
    "card_declined", "generic_decline", "insufficient_funds", "do_not_honor", "expired_card",
    "incorrect_cvc", "invalid_cvc", "incorrect_number", "invalid_number", "invalid_expiry_month",
    "invalid_expiry_year", "incorrect_zip", "lost_card", "stolen_card", "fraudulent",
    "pickup_card", "restricted_card", "card_not_supported", "card_velocity_exceeded",
    "currency_not_supported", "transaction_not_allowed", "withdrawal_count_limit_exceeded",
    "security_violation", "service_not_allowed", "stop_payment_order", "testmode_decline",
    "authentication_required", "payment_intent_authentication_failure",
)  # fmt: skip
# Nothing moved and another channel (or a later try) may succeed; Stripe documents
# processing_error, rate_limit and lock_timeout as safe to retry.
_CHANNEL_REFUSALS = (
    "rate_limit", "lock_timeout", "processing_error", "try_again_later", "issuer_not_available",
    "reenter_transaction", "authentication_error", "invalid_request_error", "api_key_expired",
    "resource_missing", "parameter_missing", "parameter_unknown", "parameter_invalid_integer",
    "parameter_invalid_string", "payment_intent_unexpected_state", "amount_too_small",
    UNREACHABLE,
)  # fmt: skip
# A refund beyond what is left fails the same way anywhere, so these stop the dispatcher.
_REFUND_REFUSALS = ("charge_already_refunded", "amount_too_large", "charge_disputed")
# A payout's payee or the platform's balance refused it: the same payout fails the same way
# until someone acts (the payee verifies, an operator tops the balance up).
_PAYOUT_REFUSALS = (BALANCE_INSUFFICIENT, PAYEE_INVALID, PAYEE_REFUSED, "capability_not_active")
# Money may or may not have moved: settle by query.
_UNSETTLED = ("api_error", "idempotency_error", TIMEOUT, UNREADABLE, DISCONNECTED)

CARD_ERROR_CODES = ErrorCodeMap(
    {
        **dict.fromkeys(_CARD_DECLINES, _FINAL),
        **dict.fromkeys(_REFUND_REFUSALS, _FINAL),
        **dict.fromkeys(_PAYOUT_REFUSALS, _FINAL),
        **dict.fromkeys(_CHANNEL_REFUSALS, _RETRYABLE),
        **dict.fromkeys(_UNSETTLED, _UNKNOWN),
    },
    absent=frozenset({"resource_missing"}),
)

_PENDING_INTENT = {"processing", "requires_action", "requires_confirmation", "requires_capture"}
_REFUND_OUTCOMES = {
    "succeeded": AttemptOutcome.SUCCEEDED,
    "pending": AttemptOutcome.PENDING,
    "requires_action": AttemptOutcome.PENDING,
    "failed": AttemptOutcome.FAILED,
    "canceled": AttemptOutcome.FAILED,
}


def unreadable(message: str) -> ChannelReply:
    """The reply to an answer that is not what Stripe sends."""
    return ChannelReply(AttemptOutcome.UNKNOWN, code=UNREADABLE, message=message)


def intent_reply(intent: Any) -> ChannelReply:
    """What a PaymentIntent says about its charge."""
    if not isinstance(intent, dict) or not isinstance(intent.get("id"), str):
        return unreadable("the answer is not a PaymentIntent")
    status, ref = intent.get("status"), intent["id"]
    if status == "succeeded":
        amount = _whole(intent.get("amount_received")) or _whole(intent.get("amount"))
        return ChannelReply(AttemptOutcome.SUCCEEDED, ref, amount_minor=amount)
    if status in _PENDING_INTENT:
        return ChannelReply(AttemptOutcome.PENDING, ref, message=f"PaymentIntent is {status}")
    if status in {"requires_payment_method", "canceled"}:
        return _failed_intent(intent, ref, status)
    return unreadable(f"PaymentIntent status {status!r} is not one this adapter knows")


def _failed_intent(intent: dict[str, Any], ref: str, status: str) -> ChannelReply:
    # A decline leaves the intent waiting for another payment method, with the reason.
    error = intent.get("last_payment_error")
    code, message = _failure(error) if isinstance(error, dict) else (None, "")
    code = code or "payment_intent_unexpected_state"
    return ChannelReply(AttemptOutcome.FAILED, ref, code, message or f"PaymentIntent is {status}")


def refund_reply(refund: Any) -> ChannelReply:
    """What a Refund object says about the money given back."""
    if not isinstance(refund, dict) or not isinstance(refund.get("id"), str):
        return unreadable("the answer is not a Refund")
    outcome = _REFUND_OUTCOMES.get(refund.get("status", ""))
    if outcome is None:
        return unreadable(f"Refund status {refund.get('status')!r} is not one this adapter knows")
    code = refund.get("failure_reason") if outcome is AttemptOutcome.FAILED else None
    return ChannelReply(outcome, refund["id"], code, amount_minor=_whole(refund.get("amount")))


def transfer_reply(transfer: Any) -> ChannelReply:
    """What a Transfer says: it exists only once its money reached the connected account."""
    if not isinstance(transfer, dict) or transfer.get("object") != "transfer":
        return unreadable("the answer is not a Transfer")
    ref, amount = transfer.get("id"), _whole(transfer.get("amount"))
    if not isinstance(ref, str) or amount is None:
        return unreadable("the Transfer has no id or no integer amount")
    # Only the platform reverses a transfer, and it never does for a payout; say so if one did.
    reversed_minor = _whole(transfer.get("amount_reversed")) or 0
    message = f"{reversed_minor} of it has since been reversed" if reversed_minor else ""
    return ChannelReply(AttemptOutcome.SUCCEEDED, ref, message=message, amount_minor=amount)


def payout_reply(transfer: Any, order: PayoutOrder) -> ChannelReply:
    """A created Transfer, checked against the payout it was made for."""
    reply = transfer_reply(transfer)
    if reply.outcome is not AttemptOutcome.SUCCEEDED:
        return reply
    asked = (order.amount_minor, order.currency.lower(), order.payee_account)
    answered = (reply.amount_minor, transfer.get("currency"), transfer.get("destination"))
    if answered != asked:
        return unreadable(f"Transfer {reply.channel_ref} is {answered}, the payout is {asked}")
    return reply


def transfers_reply(transfers: Sequence[dict[str, Any]]) -> ChannelReply:
    """What the Transfers of one payout's group say; none at all means nothing was paid."""
    if not transfers:
        message = "no Transfer carries this payout id: nothing was paid"
        return ChannelReply(AttemptOutcome.FAILED, code=NOT_FOUND, message=message)
    # Lists come newest first: the first transfer made is the payout.
    reply = transfer_reply(transfers[-1])
    if len(transfers) < 2 or reply.outcome is not AttemptOutcome.SUCCEEDED:
        return reply
    ids = ", ".join(str(transfer.get("id")) for transfer in reversed(transfers))
    return replace(reply, message=f"{len(transfers)} Transfers paid this payout: {ids}")


def payout_error_reply(status: int, body: Any) -> ChannelReply:
    """A refused transfer; a destination Stripe cannot find is reported as PAYEE_INVALID."""
    reply = error_reply(status, body, AttemptOutcome.FAILED)
    error = body.get("error") if isinstance(body, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    if reply.code == NOT_FOUND and param == "destination":
        return replace(reply, code=PAYEE_INVALID)
    return reply


def error_reply(status: int, body: Any, refused: AttemptOutcome) -> ChannelReply:
    """A non-2xx answer; ``refused`` is the outcome of a plain refusal (FAILED when the call
    would have moved money, UNKNOWN for a lookup, where a refusal proves nothing)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return unreadable(f"HTTP {status} without Stripe's error body")
    code, message = _failure(error)
    if status == 401:
        code = "authentication_error"
    intent = error.get("payment_intent")
    ref = intent.get("id") if isinstance(intent, dict) else None
    unsettled = status >= 500 or error.get("type") == "idempotency_error"
    outcome = AttemptOutcome.UNKNOWN if unsettled else refused
    return ChannelReply(outcome, ref, code or "api_error", f"HTTP {status}: {message}")


def pick_intent(intents: Sequence[Any]) -> dict[str, Any] | None:
    """The PaymentIntent that tells most about an order: one that succeeded, else one still
    under way, else the latest failure."""
    readable = [intent for intent in intents if isinstance(intent, dict)]
    for wanted in ({"succeeded"}, _PENDING_INTENT):
        for intent in readable:
            if intent.get("status") in wanted:
                return intent
    return max(readable, key=lambda intent: _whole(intent.get("created")) or 0, default=None)


def notice_from_event(event: Any, channel: str) -> ChannelNotice:
    """A ChannelNotice from a webhook event; raises NoticeRefused for one it cannot use."""
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise NoticeRefused("unreadable_event")
    event_type = _text(event, "type")
    data_object = event["data"].get("object")
    if not isinstance(data_object, dict):
        raise NoticeRefused("unreadable_event")
    if event_type.startswith("payment_intent."):
        kind, outcome = NoticeKind.PAYMENT, intent_reply(data_object).outcome
    elif event_type.startswith("refund."):
        kind, outcome = NoticeKind.REFUND, refund_reply(data_object).outcome
    elif event_type == "transfer.created":
        kind, outcome = NoticeKind.PAYOUT, transfer_reply(data_object).outcome
    else:
        raise NoticeRefused(f"unsupported_event_type:{event_type}")
    return _notice(event, data_object, channel, kind, outcome)


def _notice(
    event: dict[str, Any],
    data_object: dict[str, Any],
    channel: str,
    kind: NoticeKind,
    outcome: AttemptOutcome,
) -> ChannelNotice:
    metadata = data_object.get("metadata")
    if not isinstance(metadata, dict):
        raise NoticeRefused("event_without_metadata")
    order_id, refund_id = _notice_ids(metadata, kind)
    return ChannelNotice(
        channel=channel,
        kind=kind,
        order_id=order_id,
        outcome=outcome,
        channel_ref=_text(data_object, "id"),
        amount_minor=_required_whole(data_object, "amount"),
        currency=_text(data_object, "currency").upper(),
        occurred_at=datetime.fromtimestamp(_required_whole(event, "created"), UTC),
        refund_id=refund_id,
        notice_id=_text(event, "id"),
    )


def _notice_ids(metadata: Mapping[str, Any], kind: NoticeKind) -> tuple[str, str | None]:
    # A payout has no order: its payout id stands in both places.
    if kind is NoticeKind.PAYOUT:
        payout_id = _text(metadata, "payout_id")
        return payout_id, payout_id
    refund_id = _text(metadata, "refund_id") if kind is NoticeKind.REFUND else None
    return _text(metadata, "order_id"), refund_id


def _failure(error: Mapping[str, Any]) -> tuple[str | None, str]:
    candidates = [error.get(name) for name in ("decline_code", "code", "type")]
    named = [candidate for candidate in candidates if isinstance(candidate, str) and candidate]
    known = [name for name in named if name in CARD_ERROR_CODES.codes]
    code = next(iter(known or named), None)
    message = error.get("message")
    return code, message if isinstance(message, str) else ""


def _whole(value: Any) -> int | None:
    # Stripe's amounts are JSON integers; a float or a bool is not an amount.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _required_whole(source: Mapping[str, Any], key: str) -> int:
    value = _whole(source.get(key))
    if value is None:
        raise NoticeRefused(f"event_without_{key}")
    return value


def _text(source: Mapping[str, Any], key: str) -> str:
    value = source.get(key)
    if not isinstance(value, str) or not value:
        raise NoticeRefused(f"event_without_{key}")
    return value
