"""Reading the channel's callbacks: verify the signature, open the resource, read the event.

A callback is trusted only when the platform signature over its exact bytes verifies within
the clock-skew window; its resource is then decrypted under the APIv3 key (a tampered text or
tag does not open). Payments are TRANSACTION.* events, refunds REFUND.* events; the outcome
is read from the decrypted state, not from the event's name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from channels.base import AttemptOutcome, ChannelNotice, NoticeKind, NoticeRefused
from channels.wechat.signing import (
    PlatformVerifier,
    ResourceUnreadable,
    SignatureRejected,
    decrypt_resource,
)
from channels.wechat.wire import CURRENCY, RefundStatus, TradeState, read_wechat_time

CHANNEL = "wechat"

_PAYMENT_OUTCOMES = {
    TradeState.SUCCESS: AttemptOutcome.SUCCEEDED,
    TradeState.REFUND: AttemptOutcome.SUCCEEDED,
    TradeState.NOTPAY: AttemptOutcome.PENDING,
    TradeState.USERPAYING: AttemptOutcome.PENDING,
    TradeState.PAYERROR: AttemptOutcome.FAILED,
    TradeState.CLOSED: AttemptOutcome.FAILED,
    TradeState.REVOKED: AttemptOutcome.FAILED,
}
_REFUND_OUTCOMES = {
    RefundStatus.SUCCESS: AttemptOutcome.SUCCEEDED,
    RefundStatus.PROCESSING: AttemptOutcome.PENDING,
    RefundStatus.CLOSED: AttemptOutcome.FAILED,
    RefundStatus.ABNORMAL: AttemptOutcome.FAILED,
}


def payment_outcome(state: TradeState) -> AttemptOutcome:
    """What a ``trade_state`` means for the payment."""
    return _PAYMENT_OUTCOMES[state]


def refund_outcome(status: RefundStatus) -> AttemptOutcome:
    """What a refund ``status`` means for the refund."""
    return _REFUND_OUTCOMES[status]


def read_notice(
    verifier: PlatformVerifier, apiv3_key: bytes, headers: Mapping[str, str], body: bytes
) -> ChannelNotice:
    """A verified, decrypted callback as a notice; raises NoticeRefused with the reason."""
    try:
        verifier.verify(headers, body)
    except SignatureRejected as rejected:
        raise NoticeRefused(rejected.reason) from rejected
    envelope = _json_object(body, "unreadable body")
    try:
        plaintext = decrypt_resource(apiv3_key, _mapping(envelope.get("resource")))
    except ResourceUnreadable as error:
        raise NoticeRefused("undecryptable resource") from error
    resource = _json_object(plaintext, "unreadable resource")
    try:
        return _notice(envelope, resource)
    except NoticeRefused:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise NoticeRefused("resource lacks what the event needs") from error


def _notice(envelope: Mapping[str, Any], resource: Mapping[str, Any]) -> ChannelNotice:
    event_type = str(envelope.get("event_type", ""))
    if event_type.startswith("TRANSACTION."):
        return _payment_notice(envelope, resource)
    if event_type.startswith("REFUND."):
        return _refund_notice(envelope, resource)
    raise NoticeRefused(f"unknown event type {event_type!r}")


def _payment_notice(envelope: Mapping[str, Any], resource: Mapping[str, Any]) -> ChannelNotice:
    amount = resource["amount"]
    return ChannelNotice(
        channel=CHANNEL,
        kind=NoticeKind.PAYMENT,
        order_id=str(resource["out_trade_no"]),
        outcome=payment_outcome(TradeState(resource["trade_state"])),
        channel_ref=str(resource.get("transaction_id", "")),
        amount_minor=_fen(amount["total"]),
        currency=str(amount.get("currency") or CURRENCY),
        occurred_at=read_wechat_time(resource.get("success_time") or envelope["create_time"]),
        notice_id=str(envelope["id"]),
    )


def _refund_notice(envelope: Mapping[str, Any], resource: Mapping[str, Any]) -> ChannelNotice:
    # The refund callback's amount carries no currency: the channel refunds in CNY only.
    return ChannelNotice(
        channel=CHANNEL,
        kind=NoticeKind.REFUND,
        order_id=str(resource["out_trade_no"]),
        outcome=refund_outcome(RefundStatus(resource["refund_status"])),
        channel_ref=str(resource["refund_id"]),
        amount_minor=_fen(resource["amount"]["refund"]),
        currency=CURRENCY,
        occurred_at=read_wechat_time(resource.get("success_time") or envelope["create_time"]),
        refund_id=str(resource["out_refund_no"]),
        notice_id=str(envelope["id"]),
    )


def _fen(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an amount must be a whole number of fen")
    return value


def _json_object(raw: bytes, refusal: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError as error:
        raise NoticeRefused(refusal) from error
    if not isinstance(parsed, dict):
        raise NoticeRefused(refusal)
    return parsed


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ResourceUnreadable("resource is not an object")
    return value
