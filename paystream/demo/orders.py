"""Realistic batches of payment orders, with the defects real clients produce.

Each defect is injected on purpose and its expected outcome recorded independently of the
validation code, so the demo and the end-to-end tests can check the pipeline's answers.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from events.identity import payment_id_for
from events.records import PaymentMethod, RejectionReason, RequestPayment, utc_now

# Coin-recharge price tiers of a consumer app, in fen (CNY minor units).
RECHARGE_TIERS_FEN = (600, 3000, 9800, 19800, 32800, 64800)
CURRENCIES = (("CNY", 0.85), ("USD", 0.1), ("JPY", 0.05))
POISON_MESSAGES = (b"\x00\x00\x00\x00", b"not avro at all", b"\x00\x00\x00\x03\xe7\xff\xff")


@dataclass(frozen=True)
class ExpectedOutcome:
    """What the pipeline must decide for one payment."""

    accepted: bool
    amount_minor: int
    currency: str
    reason: RejectionReason | None = None


@dataclass
class OrderBatch:
    """Commands in publish order (repeats included), poison messages, and expected outcomes."""

    commands: list[RequestPayment] = field(default_factory=list)
    expected: dict[str, ExpectedOutcome] = field(default_factory=dict)
    repeats: int = 0
    conflicting_repeats: int = 0
    poison: list[bytes] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        """How many payments must be rejected."""
        return sum(1 for outcome in self.expected.values() if not outcome.accepted)


def _amount(rng: random.Random, currency: str) -> int:
    if currency == "CNY":
        return rng.choice(RECHARGE_TIERS_FEN) if rng.random() < 0.6 else rng.randint(100, 500_000)
    if currency == "JPY":
        return rng.randint(100, 50_000)
    return rng.randint(99, 50_000)


def valid_order(
    rng: random.Random, index: int, issued_at: datetime, ceiling: Callable[[str], int] | None = None
) -> RequestPayment:
    """One well-formed order from one of a few hundred shops and thousands of users, its
    amount kept within ``ceiling(currency)`` when a ceiling is given."""
    currency = rng.choices([c for c, _ in CURRENCIES], [w for _, w in CURRENCIES])[0]
    merchant = f"shop-{rng.randint(1, 300):04d}"
    return RequestPayment(
        command_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        idempotency_key=f"order-{index:07d}-{rng.getrandbits(32):08x}",
        issued_at=issued_at,
        merchant_id=merchant,
        order_id=f"ORD{index:09d}",
        user_id=f"u{rng.randint(1, 20_000):06d}",
        amount_minor=min(_amount(rng, currency), ceiling(currency) if ceiling else 10**12),
        currency=currency,
        method=rng.choice([PaymentMethod.ALIPAY, PaymentMethod.WECHAT_PAY, PaymentMethod.CARD]),
        device_id=f"dev-{rng.getrandbits(40):010x}",
        client_ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        region="CN" if currency == "CNY" else rng.choice(["US", "JP", "SG"]),
        metadata={"sku": f"sku-{rng.randint(1, 999)}"},
    )


Defect = Callable[[RequestPayment, int], tuple[RequestPayment, RejectionReason]]


def _defects() -> list[Defect]:
    return [
        lambda c, _m: (replace(c, amount_minor=0), RejectionReason.AMOUNT_NOT_POSITIVE),
        lambda c, _m: (
            replace(c, amount_minor=-c.amount_minor),
            RejectionReason.AMOUNT_NOT_POSITIVE,
        ),
        lambda c, m: (replace(c, amount_minor=m + 1), RejectionReason.AMOUNT_OVER_MAXIMUM),
        lambda c, _m: (replace(c, currency="XYZ"), RejectionReason.UNKNOWN_CURRENCY),
        lambda c, _m: (replace(c, currency="cny"), RejectionReason.UNKNOWN_CURRENCY),
        lambda c, _m: (replace(c, merchant_id=""), RejectionReason.MERCHANT_MISSING),
        lambda c, _m: (replace(c, order_id="order with spaces"), RejectionReason.MALFORMED_FIELD),
        lambda c, _m: (replace(c, client_ip="999.1.1.1"), RejectionReason.MALFORMED_FIELD),
    ]


def realistic_batch(
    count: int,
    *,
    seed: int = 7,
    invalid_share: float = 0.05,
    repeat_share: float = 0.05,
    max_amount_minor: int = 10_000_000,
    max_amount_minor_by_currency: dict[str, int] | None = None,
) -> OrderBatch:
    """``count`` distinct orders, some invalid, then repeats of some of them, plus poison.

    The maxima are the ones the validating worker is configured with, so that valid orders
    stay within them and the over-maximum defect goes just past them.
    """
    overrides = max_amount_minor_by_currency or {}

    def ceiling(currency: str) -> int:
        return overrides.get(currency, max_amount_minor)

    rng = random.Random(seed)
    batch = OrderBatch()
    defects = _defects()
    start = utc_now()
    for index in range(count):
        command = valid_order(rng, index, start + timedelta(milliseconds=index), ceiling)
        reason = None
        if rng.random() < invalid_share:
            command, reason = rng.choice(defects)(command, ceiling(command.currency))
        batch.commands.append(command)
        batch.expected[payment_id_for(command.merchant_id, command.idempotency_key)] = (
            ExpectedOutcome(reason is None, command.amount_minor, command.currency, reason)
        )
    _add_repeats(batch, rng, int(count * repeat_share))
    batch.poison = list(POISON_MESSAGES)
    return batch


def _add_repeats(batch: OrderBatch, rng: random.Random, repeats: int) -> None:
    originals = rng.sample(batch.commands, min(repeats, len(batch.commands)))
    for number, original in enumerate(originals):
        retry = replace(original, command_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        if number % 10 == 9:  # a client bug: the same key reused for a different amount
            retry = replace(retry, amount_minor=original.amount_minor + 1)
            batch.conflicting_repeats += 1
        position = rng.randint(batch.commands.index(original) + 1, len(batch.commands))
        batch.commands.insert(position, retry)
        batch.repeats += 1
