"""The risk counters live in changelogged state stores: they survive a SIGKILLed worker (store
recovery) and follow their partitions when a second worker joins and the first leaves."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from events.client import PaymentsClient
from events.money import Money
from events.risk_client import RiskClient
from events.risk_records import RiskAssessed, RiskOutcome
from tests.e2e.risk_support import RiskLog, pay, scenario_rules

pytestmark = pytest.mark.e2e

DEVICES = [f"dev-r{number}" for number in range(8)]


async def pay_round(client: PaymentsClient, log: RiskLog, expected_count: int, stack) -> None:
    """One payment per device; each must see every earlier payment of its device and user."""
    payments = {
        device: await pay(client, "m-r", f"user-{device}", Money(5_000, "CNY"), device_id=device)
        for device in DEVICES
    }
    assert await log.until(
        lambda: all(log.of(RiskAssessed, payment_id=p) for p in payments.values()), timeout=120
    ), stack.logs()
    for device, payment in payments.items():
        (assessed,) = log.of(RiskAssessed, payment_id=payment)
        assert assessed.outcome is RiskOutcome.APPROVE, (device, assessed.fired)
        counts = (assessed.features["device.payments_1h"], assessed.features["user.payments_1d"])
        assert counts == (expected_count, expected_count), (device, stack.logs())
        assert assessed.features["user.history_payments"] == expected_count - 1


async def test_counters_survive_a_crash_and_follow_a_rebalance(stack_factory):
    stack = stack_factory()
    env = stack.environment
    text = scenario_rules(2)
    async with RiskClient(env.bootstrap, namespace=env.namespace) as risk:
        await risk.publish_ruleset(2, hashlib.sha256(text.encode()).hexdigest(), text, "test")
        await risk.apply_merchant("m-r", "Recovery Shop", "games")
        await risk.review_merchant("m-r", "A", "test", "ok")
    first = stack.start("worker", name="worker-1")
    async with (
        PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
        RiskLog(env.bootstrap, stack.catalogue) as log,
    ):
        await pay_round(client, log, 1, stack)
        await pay_round(client, log, 2, stack)
        first.kill()  # SIGKILL: whatever was not in the changelog is gone
        second = stack.start("worker", name="worker-2")
        await pay_round(client, log, 3, stack)
        # A third worker joins: the partitions split between the two, some keys move.
        third = stack.start("worker", name="worker-3")
        await asyncio.sleep(10)
        await pay_round(client, log, 4, stack)
        second.stop()  # a graceful leave: the third worker takes every partition
        await asyncio.sleep(5)
        await pay_round(client, log, 5, stack)
    assert third.running
