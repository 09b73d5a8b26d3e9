"""The simulated channel's trade desk: alipay.trade.pay, .query and .refund on the order book.

Each method reads its ``biz_content`` and answers the node the gateway puts under
``<method>_response``, with the channel's own codes and sub_codes. Charges are idempotent on
``out_trade_no`` and refunds on ``out_request_no``, as the channel's are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.alipay.protocol import (
    BUSINESS_FAILED,
    CURRENCY,
    SUCCESS,
    TRADE_CLOSED,
    TRADE_SUCCESS,
    channel_time,
)
from channels.simulator import (
    Behaviour,
    OrderBook,
    OrderStatus,
    RefundRefused,
    SimOrder,
    SimRefund,
    fee_for,
)
from events.money import MalformedAmount, decimal_text, parse_decimal_text

Node = dict[str, Any]

DECLINE_CODE = "ACQ.BUYER_BALANCE_NOT_ENOUGH"
# A buyer's payment code: 16 to 24 digits starting 25 to 30.
_PAYMENT_CODE = re.compile(r"(2[5-9]|30)\d{14,22}")

_SUB_MESSAGES = {
    "ACQ.INVALID_PARAMETER": "参数无效",
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "支付授权码无效",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "买家余额不足",
    "ACQ.TRADE_HAS_SUCCESS": "交易已被支付",
    "ACQ.CONTEXT_INCONSISTENT": "交易信息被篡改",
    "ACQ.TRADE_NOT_EXIST": "交易不存在",
    "ACQ.TRADE_STATUS_ERROR": "交易状态不合法",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "退款金额超限",
    "ACQ.REFUND_FEE_ERROR": "交易退款金额有误",
    "ACQ.DISCORDANT_REPEAT_REQUEST": "不一致的请求",
}

# The order book's refusals in the channel's sub_codes.
_REFUND_REFUSALS = {
    "ORDER_NOT_FOUND": "ACQ.TRADE_NOT_EXIST",
    "ORDER_NOT_PAID": "ACQ.TRADE_STATUS_ERROR",
    "REFUND_AMOUNT_INVALID": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
}


def business_failure(sub_code: str) -> Node:
    """A 40004 answer: the gateway took the call and the business layer refused it."""
    sub_msg = _SUB_MESSAGES.get(sub_code, "业务处理失败")
    return {
        "code": BUSINESS_FAILED,
        "msg": "Business Failed",
        "sub_code": sub_code,
        "sub_msg": sub_msg,
    }


class BizRefused(ValueError):
    """A call the business layer refuses; ``sub_code`` says why."""

    def __init__(self, sub_code: str) -> None:
        super().__init__(sub_code)
        self.sub_code = sub_code


@dataclass(frozen=True)
class Buyer:
    """The one buyer the simulated channel charges, as its answers name them."""

    user_id: str = "2088102177846880"
    logon_id: str = "pay***@example.com"


@dataclass(frozen=True)
class DeskAnswer:
    """A method's answer node, with what the call changed (for the notifier)."""

    node: Node
    captured: SimOrder | None = None
    refunded: tuple[SimOrder, SimRefund] | None = None


class TradeDesk:
    """Answers the trade methods from an order book, idempotently."""

    def __init__(self, book: OrderBook, behaviour: Behaviour, buyer: Buyer) -> None:
        self._book = book
        self._behaviour = behaviour
        self._buyer = buyer

    def pay(self, biz: Mapping[str, Any], notify_url: str, now: datetime) -> DeskAnswer:
        """alipay.trade.pay: capture at once, or answer the earlier result for the same order."""
        try:
            order_id = _required(biz, "out_trade_no")
            amount = _amount(biz, "total_amount")
            _check_payment_code(biz)
        except BizRefused as refused:
            return DeskAnswer(business_failure(refused.sub_code))
        known = self._book.get(order_id)
        if known is not None:
            return DeskAnswer(self._replayed_pay(known, amount))
        order = self._book.add_charge(self._new_charge(biz, order_id, amount, notify_url, now))
        captured = order if order.status is OrderStatus.SUCCESS else None
        return DeskAnswer(self._pay_node(order), captured=captured)

    def query(self, biz: Mapping[str, Any]) -> DeskAnswer:
        """alipay.trade.query: where the order stands, by out_trade_no."""
        order = self._book.get(str(biz.get("out_trade_no", "")))
        if order is None:
            return DeskAnswer(business_failure("ACQ.TRADE_NOT_EXIST"))
        return DeskAnswer(self._query_node(order))

    def refund(self, biz: Mapping[str, Any], now: datetime) -> DeskAnswer:
        """alipay.trade.refund: once per out_request_no, never above what is left."""
        try:
            order_id = _required(biz, "out_trade_no")
            refund_id = _required(biz, "out_request_no")
            amount = _amount(biz, "refund_amount")
        except BizRefused as refused:
            return DeskAnswer(business_failure(refused.sub_code))
        earlier = self._earlier_refund(refund_id)
        if earlier is not None:
            return DeskAnswer(self._replayed_refund(earlier, order_id, amount))
        try:
            refund = self._book.refund(order_id, refund_id, amount, now, _reason(biz))
        except RefundRefused as refused:
            return DeskAnswer(business_failure(_REFUND_REFUSALS[refused.code]))
        order = self._book.get(order_id)
        assert order is not None  # the book just refunded it
        return DeskAnswer(self._refund_node(order, refund, changed=True), refunded=(order, refund))

    def _new_charge(
        self, biz: Mapping[str, Any], order_id: str, amount: int, notify_url: str, now: datetime
    ) -> SimOrder:
        succeeded = self._behaviour.succeeds()
        return SimOrder(
            order_id=order_id,
            channel_ref=self._book.next_ref(now),
            amount_minor=amount,
            currency=CURRENCY,
            subject=str(biz.get("subject", "")),
            status=OrderStatus.SUCCESS if succeeded else OrderStatus.FAILED,
            created_at=now,
            fee_minor=fee_for(amount, self._behaviour.settings.fee_bps) if succeeded else 0,
            notify_url=notify_url,
            failure_code=None if succeeded else DECLINE_CODE,
        )

    def _replayed_pay(self, order: SimOrder, amount: int) -> Node:
        if amount == order.amount_minor:
            return self._pay_node(order)
        if order.status is OrderStatus.SUCCESS:
            return business_failure("ACQ.TRADE_HAS_SUCCESS")
        return business_failure("ACQ.CONTEXT_INCONSISTENT")

    def _pay_node(self, order: SimOrder) -> Node:
        if order.status is not OrderStatus.SUCCESS:
            return business_failure(order.failure_code or DECLINE_CODE)
        paid = _yuan(order.amount_minor)
        return {
            "code": SUCCESS,
            "msg": "Success",
            **self._trade_names(order),
            "total_amount": paid,
            "receipt_amount": paid,
            "buyer_pay_amount": paid,
            "invoice_amount": paid,
            "point_amount": "0.00",
            "gmt_payment": channel_time(order.created_at),
            "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": paid}],
        }

    def _query_node(self, order: SimOrder) -> Node:
        paid = order.status is OrderStatus.SUCCESS
        node: Node = {
            "code": SUCCESS,
            "msg": "Success",
            **self._trade_names(order),
            "trade_status": trade_status(order),
            "total_amount": _yuan(order.amount_minor),
            "buyer_pay_amount": _yuan(order.amount_minor if paid else 0),
            "receipt_amount": _yuan(order.amount_minor if paid else 0),
        }
        if paid:
            # Only a paid trade has a payment date, also once a full refund has closed it.
            node["send_pay_date"] = channel_time(order.created_at)
        return node

    def _refund_node(self, order: SimOrder, refund: SimRefund, *, changed: bool) -> Node:
        return {
            "code": SUCCESS,
            "msg": "Success",
            **self._trade_names(order),
            "fund_change": "Y" if changed else "N",
            "refund_fee": _yuan(order.refunded_minor),  # the trade's refunds so far
            "send_back_fee": _yuan(refund.amount_minor),  # this refund's own amount
            "gmt_refund_pay": channel_time(refund.created_at),
        }

    def _trade_names(self, order: SimOrder) -> Node:
        return {
            "trade_no": order.channel_ref,
            "out_trade_no": order.order_id,
            "buyer_logon_id": self._buyer.logon_id,
            "buyer_user_id": self._buyer.user_id,
        }

    def _earlier_refund(self, refund_id: str) -> tuple[SimOrder, SimRefund] | None:
        for order in self._book.orders():
            for refund in order.refunds:
                if refund.refund_id == refund_id:
                    return order, refund
        return None

    def _replayed_refund(
        self, earlier: tuple[SimOrder, SimRefund], order_id: str, amount: int
    ) -> Node:
        order, refund = earlier
        if order.order_id != order_id or refund.amount_minor != amount:
            return business_failure("ACQ.DISCORDANT_REPEAT_REQUEST")
        return self._refund_node(order, refund, changed=False)


def trade_status(order: SimOrder) -> str:
    """The channel's trade_status: a declined or fully refunded trade is closed."""
    if order.status is not OrderStatus.SUCCESS:
        return TRADE_CLOSED
    return TRADE_CLOSED if order.refunded_minor >= order.amount_minor else TRADE_SUCCESS


def _required(biz: Mapping[str, Any], name: str) -> str:
    value = biz.get(name)
    if not isinstance(value, str) or not value:
        raise BizRefused("ACQ.INVALID_PARAMETER")
    return value


def _amount(biz: Mapping[str, Any], name: str) -> int:
    try:
        amount = parse_decimal_text(_required(biz, name), CURRENCY)
    except MalformedAmount:
        raise BizRefused("ACQ.INVALID_PARAMETER") from None
    if amount <= 0:
        raise BizRefused(
            "ACQ.REFUND_FEE_ERROR" if name == "refund_amount" else "ACQ.INVALID_PARAMETER"
        )
    return amount


def _check_payment_code(biz: Mapping[str, Any]) -> None:
    if biz.get("scene", "bar_code") not in {"bar_code", "wave_code", "security_code"}:
        raise BizRefused("ACQ.INVALID_PARAMETER")
    if not _PAYMENT_CODE.fullmatch(str(biz.get("auth_code", ""))):
        raise BizRefused("ACQ.PAYMENT_AUTH_CODE_INVALID")


def _reason(biz: Mapping[str, Any]) -> str:
    return str(biz.get("refund_reason", ""))


def _yuan(amount_minor: int) -> str:
    return decimal_text(amount_minor, CURRENCY)
