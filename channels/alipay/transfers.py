"""The simulated channel's transfer desk: alipay.fund.trans.uni.transfer and .common.query.

The platform's account pays payees from its balance, one transfer per ``out_biz_no``: a repeat
answers the transfer already made and never pays twice, and a repeat with other terms is refused
with PAYMENT_INFO_INCONSISTENCY. A transfer refused before money moved (the payee, the limits,
the balance, a system error) leaves no record, so its query answers ORDER_NOT_EXIST and the same
request may be sent again, as the channel asks after SYSTEM_ERROR or a top-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.alipay.protocol import (
    BUSINESS_FAILED,
    CURRENCY,
    LOGON_ID,
    SUCCESS,
    TRANSFER,
    TRANSFER_PRODUCT,
    TRANSFER_SCENE,
    TRANSFER_SUCCESS,
    USER_ID,
    channel_time,
)
from channels.simulator import Behaviour
from events.money import MalformedAmount, decimal_text, parse_decimal_text

Node = dict[str, Any]

# A payee account starting so does not exist, or is frozen; this name never matches its account.
MISSING_PREFIX = "missing"
FROZEN_PREFIX = "frozen"
WRONG_NAME = "Wrong Name"

DEFAULT_BALANCE_MINOR = 100_000_000_00  # a hundred million yuan
# The product's own bounds for a transfer to an account: 0.10 to 100,000 yuan.
MINIMUM_MINOR = 10
DEFAULT_SINGLE_LIMIT_MINOR = 100_000_00

_SUB_MESSAGES = {
    "INVALID_PARAMETER": "参数有误",
    "SYSTEM_ERROR": "系统繁忙",
    "PAYEE_NOT_EXIST": "收款账号不存在",
    "PAYEE_ACCOUNT_STATUS_ERROR": "收款方账号异常",
    "PAYEE_USER_INFO_ERROR": "支付宝账号和姓名不匹配，请确认姓名是否正确",  # noqa: RUF001
    "EXCEED_LIMIT_SM_AMOUNT": "单笔额度超限",
    "PAYER_BALANCE_NOT_ENOUGH": "付款方余额不足",
    "PAYMENT_INFO_INCONSISTENCY": "两次请求商户单号一样，但是参数不一致",  # noqa: RUF001
    "ORDER_NOT_EXIST": "转账订单不存在",
}


class TransferRefused(ValueError):
    """A transfer call the business layer refuses; ``sub_code`` says why."""

    def __init__(self, sub_code: str) -> None:
        super().__init__(sub_code)
        self.sub_code = sub_code


def transfer_failure(sub_code: str) -> Node:
    """A 40004 answer with one of the transfer API's sub_codes."""
    return {
        "code": BUSINESS_FAILED,
        "msg": "Business Failed",
        "sub_code": sub_code,
        "sub_msg": _SUB_MESSAGES.get(sub_code, "业务处理失败"),
    }


@dataclass(frozen=True)
class TransferTerms:
    """What a transfer call asks for; two calls under one out_biz_no must ask the same."""

    payout_id: str
    amount_minor: int
    identity: str
    identity_type: str
    name: str
    title: str = ""
    remark: str = ""

    def same_as(self, other: TransferTerms) -> bool:
        """Whether ``other`` asks for the same transfer (title and remark aside)."""
        mine = (self.amount_minor, self.identity, self.identity_type, self.name)
        return mine == (other.amount_minor, other.identity, other.identity_type, other.name)


@dataclass(frozen=True)
class SimTransfer:
    """A transfer the simulated channel made."""

    terms: TransferTerms
    order_id: str
    pay_fund_order_id: str
    created_at: datetime


class TransferDesk:
    """Answers the transfer methods from the platform's balance, idempotently."""

    def __init__(
        self,
        behaviour: Behaviour,
        balance_minor: int = DEFAULT_BALANCE_MINOR,
        single_limit_minor: int = DEFAULT_SINGLE_LIMIT_MINOR,
    ) -> None:
        self.balance_minor = balance_minor
        self.single_limit_minor = single_limit_minor
        self._behaviour = behaviour
        self._transfers: dict[str, SimTransfer] = {}
        self._serial = 0

    def get(self, payout_id: str) -> SimTransfer | None:
        """The transfer made under our payout id, if any."""
        return self._transfers.get(payout_id)

    def transfers(self) -> list[SimTransfer]:
        """Every transfer made, oldest first."""
        return list(self._transfers.values())

    def answer(self, method: str, biz_text: str, now: datetime) -> Node:
        """The answer node of a transfer method to its ``biz_content`` text."""
        try:
            biz = _biz_content(biz_text)
            if method == TRANSFER:
                return self._transfer(_terms(biz), now)
            return self._query(biz)
        except TransferRefused as refused:
            return transfer_failure(refused.sub_code)

    def _transfer(self, terms: TransferTerms, now: datetime) -> Node:
        known = self._transfers.get(terms.payout_id)
        if known is not None:
            if not known.terms.same_as(terms):
                raise TransferRefused("PAYMENT_INFO_INCONSISTENCY")
            return _transfer_node(known)
        self._check_payable(terms)
        # Nothing awaits between the checks and the booking: a concurrent repeat cannot pay twice.
        self.balance_minor -= terms.amount_minor
        transfer = self._book(terms, now)
        return _transfer_node(transfer)

    def _check_payable(self, terms: TransferTerms) -> None:
        if terms.identity.startswith(MISSING_PREFIX):
            raise TransferRefused("PAYEE_NOT_EXIST")
        if terms.identity.startswith(FROZEN_PREFIX):
            raise TransferRefused("PAYEE_ACCOUNT_STATUS_ERROR")
        if terms.name == WRONG_NAME:
            raise TransferRefused("PAYEE_USER_INFO_ERROR")
        if terms.amount_minor > self.single_limit_minor:
            raise TransferRefused("EXCEED_LIMIT_SM_AMOUNT")
        if terms.amount_minor > self.balance_minor:
            raise TransferRefused("PAYER_BALANCE_NOT_ENOUGH")
        # A failing channel fails here without moving money, which its answer cannot tell.
        if not self._behaviour.succeeds():
            raise TransferRefused("SYSTEM_ERROR")

    def _book(self, terms: TransferTerms, now: datetime) -> SimTransfer:
        self._serial += 1
        day = f"{now:%Y%m%d}"
        transfer = SimTransfer(
            terms=terms,
            order_id=f"{day}110070000006{self._serial:010d}",
            pay_fund_order_id=f"{day}110070001506{self._serial:010d}",
            created_at=now,
        )
        self._transfers[terms.payout_id] = transfer
        return transfer

    def _query(self, biz: Mapping[str, Any]) -> Node:
        _check_product(biz, required=False)
        transfer = self._transfers.get(_required(biz, "out_biz_no"))
        if transfer is None:
            raise TransferRefused("ORDER_NOT_EXIST")
        return {
            "code": SUCCESS,
            "msg": "Success",
            "order_id": transfer.order_id,
            "pay_fund_order_id": transfer.pay_fund_order_id,
            "out_biz_no": transfer.terms.payout_id,
            "trans_amount": decimal_text(transfer.terms.amount_minor, CURRENCY),
            "status": TRANSFER_SUCCESS,
            "pay_date": channel_time(transfer.created_at),
        }


def _transfer_node(transfer: SimTransfer) -> Node:
    return {
        "code": SUCCESS,
        "msg": "Success",
        "out_biz_no": transfer.terms.payout_id,
        "order_id": transfer.order_id,
        "pay_fund_order_id": transfer.pay_fund_order_id,
        "status": TRANSFER_SUCCESS,
        "trans_date": channel_time(transfer.created_at),
    }


def _biz_content(text: str) -> dict[str, Any]:
    try:
        biz = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise TransferRefused("INVALID_PARAMETER") from None
    if not isinstance(biz, dict):
        raise TransferRefused("INVALID_PARAMETER")
    return biz


def _terms(biz: Mapping[str, Any]) -> TransferTerms:
    _check_product(biz, required=True)
    payee = biz.get("payee_info")
    if not isinstance(payee, dict):
        raise TransferRefused("INVALID_PARAMETER")
    identity_type = _required(payee, "identity_type")
    name = payee.get("name") or ""
    # A login id can name more than one person: the channel wants the name to pick the account.
    if identity_type not in {LOGON_ID, USER_ID} or (identity_type == LOGON_ID and not name):
        raise TransferRefused("INVALID_PARAMETER")
    return TransferTerms(
        payout_id=_required(biz, "out_biz_no"),
        amount_minor=_amount(biz),
        identity=_required(payee, "identity"),
        identity_type=identity_type,
        name=str(name),
        title=str(biz.get("order_title") or ""),
        remark=str(biz.get("remark") or ""),
    )


def _check_product(biz: Mapping[str, Any], *, required: bool) -> None:
    # Only password-free transfers to an account are simulated; a query may leave them unsaid.
    product = biz.get("product_code")
    if product is None and required:
        raise TransferRefused("INVALID_PARAMETER")
    scene = biz.get("biz_scene")
    if product not in {None, TRANSFER_PRODUCT} or scene not in {None, TRANSFER_SCENE}:
        raise TransferRefused("INVALID_PARAMETER")


def _required(biz: Mapping[str, Any], name: str) -> str:
    value = biz.get(name)
    if not isinstance(value, str) or not value:
        raise TransferRefused("INVALID_PARAMETER")
    return value


def _amount(biz: Mapping[str, Any]) -> int:
    try:
        amount = parse_decimal_text(_required(biz, "trans_amount"), CURRENCY)
    except MalformedAmount:
        raise TransferRefused("INVALID_PARAMETER") from None
    if amount < MINIMUM_MINOR:
        raise TransferRefused("INVALID_PARAMETER")
    return amount
