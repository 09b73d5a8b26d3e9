"""How many routing decisions a second one core makes, with the default policy.

The requests vary the way live traffic does (methods, currencies, amounts from a few yuan to
past the large-card rule, merchants, a few requested channels), and the health board has seen
thousands of results, so every success-rate estimate decays from real state. Run it with
``python -m streams.routing.bench``.
"""

from __future__ import annotations

import time

from events.records import PaymentMethod
from streams.routing.decision import RoutingRequest, route_payment
from streams.routing.health import HealthBoard
from streams.routing.policy_file import default_policy
from streams.routing.quotas import QuotaBook

START_MS = 1_714_560_000_000  # 2024-05-01T10:40:00Z
BUSINESS_DATE = "2024-05-01"
# (method, currency, typical amount in minor units), in rough proportion to live traffic.
_PAYMENTS = (
    (PaymentMethod.ALIPAY, "CNY", 6_800),
    (PaymentMethod.WECHAT_PAY, "CNY", 64_800),
    (PaymentMethod.CARD, "CNY", 29_900),
    (PaymentMethod.CARD, "USD", 999),
    (PaymentMethod.CARD, "CNY", 6_000_000),
    (PaymentMethod.ALIPAY, "HKD", 7_800),
    (PaymentMethod.CARD, "HKD", 12_800),
    (PaymentMethod.CARD, "EUR", 899),
)
# Each channel's success share in tenths, for warming the board.
_SUCCESS_TENTHS = {"alipay": 9, "wechat": 9, "card": 8, "card_b": 9}


def sample_requests(count: int) -> list[RoutingRequest]:
    """``count`` requests of varied payments; one in fifty names a channel."""
    requests = []
    for index in range(count):
        method, currency, amount = _PAYMENTS[index % len(_PAYMENTS)]
        requested = "card" if index % 50 == 0 and method is PaymentMethod.CARD else None
        requests.append(
            RoutingRequest(
                payment_id=f"pay-{index:08d}",
                merchant_id=f"shop-{index % 97:04d}",
                method=method,
                currency=currency,
                amount_minor=amount + index % 1_000,
                business_date=BUSINESS_DATE,
                region="CN" if index % 3 else "HK",
                requested_channel=requested,
            )
        )
    return requests


def warmed_board(results_per_channel: int = 2_000) -> HealthBoard:
    """A health board that has seen ``results_per_channel`` results of every channel."""
    board = HealthBoard(default_policy().health)
    for index in range(results_per_channel):
        at_ms = START_MS + index * 50
        for channel, tenths in _SUCCESS_TENTHS.items():
            board.observe(channel, index % 10 < tenths, 300 + index % 400, at_ms)
    return board


def bench_decisions(count: int) -> float:
    """Routing decisions per second over ``count`` varied requests on a warmed board."""
    policy, board, quotas = default_policy(), warmed_board(), QuotaBook()
    requests = sample_requests(min(count, 10_000))
    at_ms = START_MS + 2_000 * 50
    route_payment(requests[0], policy, board, quotas, at_ms)  # compiles the policy's tables
    started = time.perf_counter()
    for index in range(count):
        route_payment(requests[index % len(requests)], policy, board, quotas, at_ms + index)
    return count / (time.perf_counter() - started)


def main() -> None:
    """Print the figure of three runs of 200,000 decisions."""
    for _ in range(3):
        print(f"{bench_decisions(200_000):,.0f} decisions/s")


if __name__ == "__main__":
    main()
