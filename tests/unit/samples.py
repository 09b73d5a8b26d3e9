"""A realistic RequestPayment for unit tests; each test overrides what it is about."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from events.records import PaymentMethod, RequestPayment


def request_payment(**changes: Any) -> RequestPayment:
    """A valid 648-coin recharge paid with WeChat Pay, with ``changes`` applied."""
    request = RequestPayment(
        command_id="6d8a1f8e-6c1a-4f57-9b0e-3f6d2a7c9e41",
        idempotency_key="order-0000042-a1b2c3d4",
        issued_at=datetime(2024, 5, 1, 11, 59, 59, 500000, tzinfo=UTC),
        merchant_id="shop-0042",
        order_id="ORD000000042",
        user_id="u004711",
        amount_minor=64800,
        currency="CNY",
        method=PaymentMethod.WECHAT_PAY,
        channel="wechat-h5",
        description="648 coins",
        device_id="dev-00ab12cd34",
        client_ip="10.1.2.3",
        account_fingerprint="sha256:4f2a9c",
        region="CN",
        metadata={"sku": "sku-648"},
    )
    return dataclasses.replace(request, **changes)
