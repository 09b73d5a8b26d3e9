"""Reading the channel's asynchronous notifications (``trade_status_sync`` form posts).

A notification is trusted only once its RSA2 signature holds under the channel's public key
(over every non-empty parameter but ``sign`` and ``sign_type``) and it names our application.
A refund also sends one: it carries ``out_biz_no`` (our refund id), and its ``refund_fee`` is
the trade's total refunded so far, not this refund's own amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric import rsa

from channels.alipay.protocol import (
    CURRENCY,
    NOTIFY_TYPE,
    SIGN_TYPE,
    TRADE_CLOSED,
    TRADE_FINISHED,
    TRADE_SUCCESS,
    WAIT_BUYER_PAY,
    parse_channel_time,
)
from channels.alipay.signing import verify_params
from channels.base import AttemptOutcome, ChannelNotice, NoticeKind, NoticeRefused
from events.money import MalformedAmount, parse_decimal_text

CHANNEL = "alipay"

_PAYMENT_OUTCOMES = {
    TRADE_SUCCESS: AttemptOutcome.SUCCEEDED,
    TRADE_FINISHED: AttemptOutcome.SUCCEEDED,
    TRADE_CLOSED: AttemptOutcome.FAILED,
    WAIT_BUYER_PAY: AttemptOutcome.PENDING,
}


def read_trade_notice(body: bytes, app_id: str, channel_key: rsa.RSAPublicKey) -> ChannelNotice:
    """Verify and decode one notification; raises NoticeRefused with the reason."""
    form = notice_form(body)
    _check_signature(form, channel_key)
    _check_origin(form, app_id)
    if form.get("out_biz_no"):
        return _refund_notice(form)
    return _payment_notice(form)


def notice_form(body: bytes) -> dict[str, str]:
    """The form's parameters; a parameter given twice is refused, as its signature is unclear."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise NoticeRefused("unreadable form") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise NoticeRefused("a parameter is repeated")
    return form


def _check_signature(form: Mapping[str, str], channel_key: rsa.RSAPublicKey) -> None:
    if not form.get("sign"):
        raise NoticeRefused("missing signature")
    if form.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        raise NoticeRefused(f"unsupported sign_type {form['sign_type']!r}")
    if not verify_params(form, channel_key, notice=True):
        raise NoticeRefused("bad signature")


def _check_origin(form: Mapping[str, str], app_id: str) -> None:
    if form.get("app_id") != app_id:
        raise NoticeRefused("the notification is for another application")
    if form.get("notify_type") != NOTIFY_TYPE:
        raise NoticeRefused(f"unknown notify_type {form.get('notify_type')!r}")


def _payment_notice(form: Mapping[str, str]) -> ChannelNotice:
    status = _field(form, "trade_status")
    if status not in _PAYMENT_OUTCOMES:
        raise NoticeRefused(f"unknown trade_status {status!r}")
    return ChannelNotice(
        channel=CHANNEL,
        kind=NoticeKind.PAYMENT,
        order_id=_field(form, "out_trade_no"),
        outcome=_PAYMENT_OUTCOMES[status],
        channel_ref=_field(form, "trade_no"),
        amount_minor=_yuan(form, "total_amount"),
        currency=CURRENCY,
        occurred_at=_time(form, "gmt_payment" if form.get("gmt_payment") else "notify_time"),
        notice_id=form.get("notify_id"),
    )


def _refund_notice(form: Mapping[str, str]) -> ChannelNotice:
    return ChannelNotice(
        channel=CHANNEL,
        kind=NoticeKind.REFUND,
        order_id=_field(form, "out_trade_no"),
        outcome=AttemptOutcome.SUCCEEDED,
        channel_ref=_field(form, "trade_no"),
        amount_minor=_yuan(form, "refund_fee"),
        currency=CURRENCY,
        occurred_at=_time(form, "gmt_refund"),
        refund_id=_field(form, "out_biz_no"),
        notice_id=form.get("notify_id"),
    )


def _field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise NoticeRefused(f"missing {name}")
    return value


def _yuan(form: Mapping[str, str], name: str) -> int:
    text = _field(form, name)
    try:
        return parse_decimal_text(text, CURRENCY)
    except MalformedAmount:
        raise NoticeRefused(f"unreadable {name}") from None


def _time(form: Mapping[str, str], name: str) -> datetime:
    text = _field(form, name)
    try:
        return parse_channel_time(text)
    except ValueError:
        raise NoticeRefused(f"unreadable {name}") from None
