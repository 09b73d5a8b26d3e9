"""The simulated channel's trades and the JSON it shows for them.

A WeChat app or JSAPI trade is created unpaid (NOTPAY) and completes when the user pays, so the
simulator keeps its own trade beside the shared order book: the book records the charge only
once the user has paid (or failed to), which is what the bill and the refunds read.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.simulator import OrderStatus, SimOrder, SimRefund
from channels.wechat.signing import encrypt_resource
from channels.wechat.wire import CURRENCY, RefundStatus, TradeState, wechat_time


class RequestInvalid(ValueError):
    """A request body the channel refuses as PARAM_ERROR."""


@dataclass(frozen=True)
class Answer:
    """A JSON answer before it is signed."""

    status: int
    payload: dict[str, Any]


def error_answer(status: int, code: str, message: str) -> Answer:
    """The channel's error body, ``{"code", "message"}``."""
    return Answer(status, {"code": code, "message": message})


def json_body(body: bytes) -> Any:
    """A request's JSON body; raises RequestInvalid."""
    try:
        return json.loads(body)
    except ValueError as error:
        raise RequestInvalid("body is not JSON") from error


@dataclass(frozen=True)
class TradeRequest:
    """A merchant's request to create a trade, as read from its JSON body."""

    trade_type: str  # APP or JSAPI
    appid: str
    mchid: str
    description: str
    out_trade_no: str
    notify_url: str
    total: int  # fen
    currency: str
    openid: str

    def same_order(self, other: TradeRequest) -> bool:
        """Whether ``other`` asks for the same trade (a repeat, not a reuse of the number)."""
        return self == other


@dataclass(frozen=True)
class RefundRequest:
    """A merchant's request to refund (part of) a paid trade."""

    out_trade_no: str
    out_refund_no: str
    refund: int  # fen
    total: int  # fen, the trade's amount repeated
    currency: str
    reason: str
    notify_url: str  # empty: notify where the payment was notified


@dataclass
class WechatTrade:
    """One trade: created unpaid; ``order`` is the book's record once the user has acted."""

    request: TradeRequest
    prepay_id: str
    created_at: datetime
    state: TradeState = TradeState.NOTPAY
    order: SimOrder | None = field(default=None)

    @property
    def current_state(self) -> TradeState:
        """The ``trade_state`` a query shows: a paid trade with refunds is REFUND."""
        if self.order is not None and self.order.refunds:
            return TradeState.REFUND
        return self.state

    @property
    def paid(self) -> bool:
        """Whether the user's money was taken."""
        return self.order is not None and self.order.status is OrderStatus.SUCCESS


def payer_openid(out_trade_no: str) -> str:
    """A stable stand-in for the paying user's openid in the merchant's app."""
    digest = hashlib.sha256(out_trade_no.encode()).hexdigest()
    return f"o{digest[:27]}"


def parse_trade_request(payload: Any, trade_type: str) -> TradeRequest:
    """Read a create-transaction body; raises RequestInvalid."""
    body = _object(payload, "body")
    amount = _object(body.get("amount"), "amount")
    out_trade_no = _text(body, "out_trade_no")
    openid = _jsapi_openid(body) if trade_type == "JSAPI" else payer_openid(out_trade_no)
    return TradeRequest(
        trade_type=trade_type,
        appid=_text(body, "appid"),
        mchid=_text(body, "mchid"),
        description=_text(body, "description"),
        out_trade_no=out_trade_no,
        notify_url=_text(body, "notify_url"),
        total=_fen(amount, "total"),
        currency=_currency(amount),
        openid=openid,
    )


def parse_refund_request(payload: Any) -> RefundRequest:
    """Read a refund body (by out_trade_no); raises RequestInvalid."""
    body = _object(payload, "body")
    amount = _object(body.get("amount"), "amount")
    notify_url = body.get("notify_url")
    return RefundRequest(
        out_trade_no=_text(body, "out_trade_no"),
        out_refund_no=_text(body, "out_refund_no"),
        refund=_fen(amount, "refund"),
        total=_fen(amount, "total"),
        currency=_currency(amount),
        reason=str(body.get("reason") or ""),
        notify_url=notify_url if isinstance(notify_url, str) else "",
    )


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestInvalid(f"{name} must be a JSON object")
    return value


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise RequestInvalid(f"{key} is missing")
    return value


def _fen(amount: dict[str, Any], key: str) -> int:
    value = amount.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RequestInvalid(f"amount.{key} must be a positive whole number of fen")
    return value


def _currency(amount: dict[str, Any]) -> str:
    currency = amount.get("currency", CURRENCY)
    if currency != CURRENCY:
        raise RequestInvalid(f"amount.currency must be {CURRENCY}")
    return CURRENCY


def _jsapi_openid(body: dict[str, Any]) -> str:
    return _text(_object(body.get("payer"), "payer"), "openid")


def transaction_json(trade: WechatTrade) -> dict[str, Any]:
    """The transaction as a query answers it and a payment callback carries it."""
    request = trade.request
    shown: dict[str, Any] = {
        "appid": request.appid,
        "mchid": request.mchid,
        "out_trade_no": request.out_trade_no,
        "trade_type": request.trade_type,
        "trade_state": trade.current_state.value,
        "trade_state_desc": _STATE_TEXT[trade.current_state],
        "attach": "",
        "payer": {"openid": request.openid},
        "amount": {"total": request.total, "currency": request.currency},
    }
    if trade.order is not None:
        shown["transaction_id"] = trade.order.channel_ref
        shown["bank_type"] = "OTHERS"
    if trade.paid and trade.order is not None:
        shown["success_time"] = wechat_time(trade.order.created_at)
        shown["amount"] |= {"payer_total": request.total, "payer_currency": request.currency}
    return shown


_STATE_TEXT = {
    TradeState.SUCCESS: "支付成功",
    TradeState.REFUND: "转入退款",
    TradeState.NOTPAY: "未支付",
    TradeState.USERPAYING: "用户支付中",
    TradeState.PAYERROR: "支付失败",
    TradeState.CLOSED: "已关闭",
    TradeState.REVOKED: "已撤销",
}


def refund_json(trade: WechatTrade, refund: SimRefund) -> dict[str, Any]:
    """A refund as the refunds endpoint answers it."""
    request = trade.request
    return {
        "refund_id": refund.channel_ref,
        "out_refund_no": refund.refund_id,
        "transaction_id": trade.order.channel_ref if trade.order else "",
        "out_trade_no": request.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": wechat_time(refund.created_at),
        "success_time": wechat_time(refund.created_at),
        "status": RefundStatus.SUCCESS.value,
        "funds_account": "AVAILABLE",
        "amount": _refund_amount(request.total, refund.amount_minor) | {"currency": CURRENCY},
    }


def refund_notice_json(trade: WechatTrade, refund: SimRefund) -> dict[str, Any]:
    """A refund as its callback's resource carries it."""
    request = trade.request
    return {
        "mchid": request.mchid,
        "out_trade_no": request.out_trade_no,
        "transaction_id": trade.order.channel_ref if trade.order else "",
        "out_refund_no": refund.refund_id,
        "refund_id": refund.channel_ref,
        "refund_status": RefundStatus.SUCCESS.value,
        "success_time": wechat_time(refund.created_at),
        "user_received_account": "支付用户零钱",
        "amount": _refund_amount(request.total, refund.amount_minor),
    }


def _refund_amount(total: int, refund: int) -> dict[str, int]:
    return {"total": total, "refund": refund, "payer_total": total, "payer_refund": refund}


def callback_envelope(
    event_type: str, summary: str, resource: dict[str, Any], apiv3_key: bytes, now: datetime
) -> dict[str, Any]:
    """A callback body: the resource sealed under the APIv3 key, its kind in the clear.

    The associated data and original type name the resource (``transaction`` or ``refund``),
    as the channel's own callbacks do.
    """
    kind = "refund" if event_type.startswith("REFUND.") else "transaction"
    plaintext = json.dumps(resource, ensure_ascii=False).encode()
    return {
        "id": str(uuid.uuid4()),
        "create_time": wechat_time(now),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypt_resource(apiv3_key, plaintext, kind, kind),
    }
