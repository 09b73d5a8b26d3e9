"""Payouts at the router: risk control first, then the payee's channel.

A shop or a creator withdraws to its own account, which lives on one channel: a payout goes to
that channel or nowhere (no fallback can pay an Alipay account through a card acquirer). Before
it goes, risk control checks it: the merchant must be approved, the payout within its rating's
``single_payout`` limit and, with the merchant's other payouts of the business day, within its
``daily_payout`` limit (a merchant's own limits override its rating's). The desk keeps each
merchant's payouts of the last business days (a changelogged store keyed by merchant id, in the
partition of the merchant's payout commands); a payout that fails on its channel gives its
amount back to the day. The payout id derives from the merchant and the command's idempotency
key, so a repeated command is the same payout.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, MutableMapping
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from events.identity import derived_id, payout_id_for
from events.payout_records import (
    PayoutCompleted,
    PayoutFailed,
    PayoutRejected,
    PayoutRouted,
    RequestPayout,
)
from events.topics import TopicCatalogue
from streams.engine.outgoing import Outgoing
from streams.risk.merchants import MerchantProfile
from streams.risk.ruleset import PAYOUT_LIMITS
from streams.risk.state import RiskState

Book = dict[str, Any]
HELD, PAID, FAILED = "held", "paid", "failed"
DAYS_KEPT = 2


class PayoutRefusal(StrEnum):
    """Why a payout was refused before any channel saw it."""

    MERCHANT_NOT_APPROVED = "MERCHANT_NOT_APPROVED"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    AMOUNT_NOT_POSITIVE = "AMOUNT_NOT_POSITIVE"
    SINGLE_PAYOUT = "limit.single_payout"
    DAILY_PAYOUT = "limit.daily_payout"


class PayoutDesk:
    """Checks payout commands against risk control and sends them to the payee's channel."""

    def __init__(
        self,
        books: MutableMapping[str, Book],
        risk: RiskState,
        channels: Callable[[], Collection[str]],
        zone: ZoneInfo,
        topics: TopicCatalogue,
    ) -> None:
        self._books = books
        self._risk = risk
        self._channels = channels
        self._zone = zone
        self._topics = topics

    def on_request(self, command: RequestPayout, now: datetime) -> list[Outgoing]:
        """Route the payout to the payee's channel, or refuse it with the reason."""
        payout_id = payout_id_for(command.merchant_id, command.idempotency_key)
        book = self._books.get(command.merchant_id) or {"days": {}, "payouts": {}}
        if payout_id in book["payouts"]:
            return []  # the same payout asked again: it is routed (or done) already
        day = command.issued_at.astimezone(self._zone).date().isoformat()
        paid_today = int(book["days"].get(day, {}).get(command.currency, 0))
        profile = self._risk.merchant(command.merchant_id)
        limits = self._limits(profile, command.currency)
        refusal, detail = self._check(command, profile, limits, paid_today)
        if refusal is not None:
            return [self._logged(_rejected(command, payout_id, refusal, detail, now))]
        assert profile is not None and profile.rating is not None
        _hold(book, payout_id, day, command)
        self._books[command.merchant_id] = book
        routed = _routed(command, payout_id, profile.rating, limits, paid_today, now)
        return [self._logged(routed)]

    def on_completed(self, completed: PayoutCompleted) -> None:
        """The channel paid: the amount stays counted in its day."""
        self._settle(completed.merchant_id, completed.payout_id, PAID)

    def on_failed(self, failed: PayoutFailed) -> None:
        """The channel did not pay: the amount leaves its day's total."""
        book = self._books.get(failed.merchant_id)
        entry = None if book is None else book["payouts"].get(failed.payout_id)
        if book is None or entry is None or entry[3] != HELD:
            return
        amount, currency, day, _ = entry
        totals = book["days"].get(day, {})
        totals[currency] = totals.get(currency, 0) - amount
        self._settle(failed.merchant_id, failed.payout_id, FAILED)

    def _settle(self, merchant_id: str, payout_id: str, state: str) -> None:
        book = self._books.get(merchant_id)
        if book is None or payout_id not in book["payouts"]:
            return
        book["payouts"][payout_id][3] = state
        self._books[merchant_id] = book

    def _limits(self, profile: MerchantProfile | None, currency: str) -> dict[str, int]:
        if profile is None or profile.rating is None:
            return {}
        every = self._risk.ruleset.limits_for(profile.rating, profile.overrides)
        keys = {name: f"{name}.{currency}" for name in PAYOUT_LIMITS}
        return {name: every[key] for name, key in keys.items() if key in every}

    def _check(
        self,
        command: RequestPayout,
        profile: MerchantProfile | None,
        limits: dict[str, int],
        paid_today: int,
    ) -> tuple[PayoutRefusal | None, str]:
        amount = command.amount_minor
        if profile is None or not profile.may_take_payments:
            status = "unknown" if profile is None else str(profile.status)
            return PayoutRefusal.MERCHANT_NOT_APPROVED, f"the merchant is {status}"
        if command.channel not in self._channels():
            return PayoutRefusal.UNKNOWN_CHANNEL, f"no channel {command.channel!r} pays out"
        if amount <= 0:
            return PayoutRefusal.AMOUNT_NOT_POSITIVE, "a payout must be more than zero"
        single = limits.get("single_payout")
        if single is not None and amount > single:
            return PayoutRefusal.SINGLE_PAYOUT, f"{amount} is over the single payout limit {single}"
        daily = limits.get("daily_payout")
        if daily is not None and paid_today + amount > daily:
            left = max(daily - paid_today, 0)
            return PayoutRefusal.DAILY_PAYOUT, f"only {left} is left of today's limit {daily}"
        return None, ""

    def _logged(self, record: PayoutRouted | PayoutRejected) -> Outgoing:
        return Outgoing(self._topics.payout_events.name, record.merchant_id.encode(), record)


def _hold(book: Book, payout_id: str, day: str, command: RequestPayout) -> None:
    """Count the payout into its day, and forget the days no payout can be counted in."""
    totals = book["days"].setdefault(day, {})
    totals[command.currency] = totals.get(command.currency, 0) + command.amount_minor
    book["payouts"][payout_id] = [command.amount_minor, command.currency, day, HELD]
    kept = sorted(book["days"])[-DAYS_KEPT:]
    book["days"] = {kept_day: book["days"][kept_day] for kept_day in kept}
    book["payouts"] = {p: e for p, e in book["payouts"].items() if e[2] in book["days"]}


def _routed(
    command: RequestPayout,
    payout_id: str,
    rating: str,
    limits: dict[str, int],
    paid_today: int,
    now: datetime,
) -> PayoutRouted:
    return PayoutRouted(
        event_id=derived_id(payout_id, "routed"),
        payout_id=payout_id,
        occurred_at=now,
        merchant_id=command.merchant_id,
        command_id=command.command_id,
        channel=command.channel,
        payee_account=command.payee_account,
        payee_name=command.payee_name,
        amount_minor=command.amount_minor,
        currency=command.currency,
        remark=command.remark,
        merchant_rating=rating,
        limits=limits,
        paid_today_minor=paid_today,
    )


def _rejected(
    command: RequestPayout, payout_id: str, refusal: PayoutRefusal, detail: str, now: datetime
) -> PayoutRejected:
    return PayoutRejected(
        event_id=derived_id(payout_id, "rejected", command.command_id),
        payout_id=payout_id,
        occurred_at=now,
        merchant_id=command.merchant_id,
        command_id=command.command_id,
        amount_minor=command.amount_minor,
        currency=command.currency,
        reason_code=str(refusal),
        detail=detail,
    )
