"""The demo's risk scenario: merchants onboarded with ratings, and a card-testing attack.

Most shops are approved (ratings mostly A and B); a few only applied and a few were refused,
so their payments show the before-stage at work. A burst of one-yuan card payments from one
device and IP over many cards shows the during-stage.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from events.identity import payment_id_for
from events.records import PaymentMethod, RequestPayment
from events.risk_client import RiskClient
from paystream.demo.orders import ExpectedOutcome, OrderBatch
from streams.risk.ruleset import RATINGS

SHOPS = 300
APPLIED_ONLY = range(291, 296)
REFUSED = range(296, 301)
RATING_WEIGHTS = (50, 30, 15, 5)  # of RATINGS, A to D
CARD_TESTING_PAYMENTS = 12


@dataclass(frozen=True)
class DemoMerchant:
    """A shop of the demo and how its onboarding ended (None: still under review)."""

    merchant_id: str
    rating: str | None
    refused: bool = False


def demo_merchants(seed: int) -> list[DemoMerchant]:
    """Every shop the demo's orders name, with its onboarding outcome."""
    rng = random.Random(seed)
    merchants = []
    for number in range(1, SHOPS + 1):
        merchant_id = f"shop-{number:04d}"
        if number in APPLIED_ONLY:
            merchants.append(DemoMerchant(merchant_id, None))
        elif number in REFUSED:
            merchants.append(DemoMerchant(merchant_id, None, refused=True))
        else:
            merchants.append(DemoMerchant(merchant_id, rng.choices(RATINGS, RATING_WEIGHTS)[0]))
    return merchants


async def onboard(client: RiskClient, merchants: list[DemoMerchant]) -> None:
    """Publish each shop's application and, where it ended, the review."""
    for merchant in merchants:
        await client.apply_merchant(merchant.merchant_id, f"Demo {merchant.merchant_id}", "games")
        if merchant.rating is not None:
            await client.review_merchant(merchant.merchant_id, merchant.rating, "demo", "ok")
        elif merchant.refused:
            await client.review_merchant(merchant.merchant_id, None, "demo", "incomplete papers")


def add_card_testing(batch: OrderBatch, rng: random.Random, issued_at: datetime) -> None:
    """A burst of one-yuan card payments from one device and IP, each with another card."""
    for number in range(CARD_TESTING_PAYMENTS):
        command = RequestPayment(
            command_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            idempotency_key=f"probe-{number:03d}-{rng.getrandbits(32):08x}",
            issued_at=issued_at + timedelta(milliseconds=number),
            merchant_id="shop-0001",
            order_id=f"PROBE{number:06d}",
            user_id=f"probe-user-{number:03d}",
            amount_minor=100,
            currency="CNY",
            method=PaymentMethod.CARD,
            device_id="dev-card-tester",
            client_ip="203.0.113.9",
            account_fingerprint=f"card-{rng.getrandbits(48):012x}",
            region="CN",
        )
        batch.commands.append(command)
        payment_id = payment_id_for(command.merchant_id, command.idempotency_key)
        batch.expected[payment_id] = ExpectedOutcome(True, command.amount_minor, "CNY")
