"""Stripe's JSON objects, drawn from the card simulator's book.

Only the fields a client of the PaymentIntents, Refunds and Events APIs reads are written, in
Stripe's names and shapes: amounts in integer minor units, currencies in lower case, times in
unix seconds, ids with their object prefixes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.card.book import CardBook, CardError, charge_id, transaction_id
from channels.card.replies import API_VERSION
from channels.simulator import OrderStatus, SimOrder, SimRefund


def unix_seconds(moment: datetime) -> int:
    """A moment as Stripe writes it."""
    return int(moment.timestamp())


def payment_error_json(error: CardError, intent_id: str) -> dict[str, Any]:
    """The ``last_payment_error`` of a declined PaymentIntent (and the body of its 402)."""
    body: dict[str, Any] = {
        "type": "card_error",
        "code": error.code,
        "message": error.message,
        "charge": charge_id(intent_id),
    }
    if error.decline_code is not None:
        body["decline_code"] = error.decline_code
    return body


def intent_json(book: CardBook, order: SimOrder) -> dict[str, Any]:
    """A PaymentIntent object."""
    details = book.details(order)
    succeeded = order.status is OrderStatus.SUCCESS
    error = details.error
    return {
        "id": order.channel_ref,
        "object": "payment_intent",
        "amount": order.amount_minor,
        "amount_received": order.amount_minor if succeeded else 0,
        "currency": order.currency.lower(),
        "status": "succeeded" if succeeded else "requires_payment_method",
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "created": unix_seconds(order.created_at),
        "latest_charge": charge_id(order.channel_ref),
        "last_payment_error": None
        if error is None
        else payment_error_json(error, order.channel_ref),
        "livemode": False,
        "metadata": dict(details.metadata),
        "payment_method": details.payment_method,
        "payment_method_types": ["card"],
    }


def refund_json(book: CardBook, order: SimOrder, refund: SimRefund) -> dict[str, Any]:
    """A Refund object."""
    return {
        "id": refund.channel_ref,
        "object": "refund",
        "amount": refund.amount_minor,
        "balance_transaction": transaction_id(refund.channel_ref),
        "charge": charge_id(order.channel_ref),
        "created": unix_seconds(refund.created_at),
        "currency": order.currency.lower(),
        "metadata": book.refund_metadata(refund),
        "payment_intent": order.channel_ref,
        "reason": None,
        "status": "succeeded",
    }


def list_json(url: str, data: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    """A list object; ``has_more`` when items beyond this page match."""
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


def search_result_json(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    """A search result (every match on one page)."""
    return {
        "object": "search_result",
        "url": url,
        "has_more": False,
        "next_page": None,
        "data": data,
    }


def event_json(
    event_id: str, event_type: str, data_object: dict[str, Any], created: datetime
) -> dict[str, Any]:
    """An Event object, as a webhook delivers it."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": unix_seconds(created),
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def error_json(
    error_type: str,
    message: str,
    code: str | None = None,
    param: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Stripe's error body: ``{"error": {"type": …, "message": …, "code"?, "param"?}}``."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    error.update(extra)
    return {"error": error}
