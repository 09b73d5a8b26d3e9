"""The risk stage on the real broker: a scripted attack yields exactly the expected decisions,
holds and alerts; a rule-set version published mid-stream takes effect without a restart;
reviewers release and reject held payments through the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys

import pytest

from events.client import PaymentsClient
from events.money import Money
from events.risk_client import RiskClient
from events.risk_records import (
    HoldResolution,
    MerchantRatingChanged,
    RiskAlert,
    RiskAssessed,
    RiskHoldResolved,
    RiskOutcome,
)
from tests.e2e.risk_support import RiskLog, pay, scenario_rules, settle

pytestmark = pytest.mark.e2e

NO_JPY = 'rule no_jpy reject when currency == "JPY"'


def fired(assessed: RiskAssessed) -> list[str]:
    return [firing.rule for firing in assessed.fired]


async def publish_rules(risk: RiskClient, version: int, extra: str = "") -> None:
    text = scenario_rules(version, extra)
    await risk.publish_ruleset(version, hashlib.sha256(text.encode()).hexdigest(), text, "test")


async def onboard(risk: RiskClient, merchant_id: str, rating: str | None) -> None:
    await risk.apply_merchant(merchant_id, f"{merchant_id} Ltd", "games")
    if rating is not None:
        await risk.review_merchant(merchant_id, rating, "test", "ok")


def cli(stack, *args: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "paystream", "risk", *args],
        env=stack.environment.variables(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


async def test_scripted_attack_gets_exactly_the_expected_decisions(stack_factory, tmp_path):
    stack = stack_factory()
    env = stack.environment
    async with RiskClient(env.bootstrap, namespace=env.namespace) as risk:
        await publish_rules(risk, 2)
        for merchant in ("m-shop", "m-cb"):
            await onboard(risk, merchant, "A")
        await onboard(risk, "m-pending", None)
    stack.start("worker")
    stack.start("project")
    cny = lambda units: Money(units * 100, "CNY")  # noqa: E731

    async with (
        PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
        RiskClient(env.bootstrap, namespace=env.namespace) as risk,
        RiskLog(env.bootstrap, stack.catalogue) as log,
    ):
        # Before: a merchant still under review cannot take payments.
        pending = await pay(client, "m-pending", "u-p", cny(10))
        refused = await log.one(RiskAssessed, payment_id=pending, timeout=90)
        assert refused.outcome is RiskOutcome.REJECT, stack.logs()
        assert fired(refused) == ["merchant.not_approved"]
        assert refused.fired[0].inputs == {"merchant.status": "APPLIED"}

        # Card testing: six one-yuan payments from one device, each with another card.
        probes = [
            await pay(client, "m-shop", f"u-ct{i}", cny(1), device_id="dev-ct", account=f"c{i}")
            for i in range(6)
        ]
        assert await log.until(lambda: len(log.of(RiskAssessed, merchant_id="m-shop")) == 6)
        decisions = {p: log.of(RiskAssessed, payment_id=p)[0] for p in probes}
        by_count = sorted(decisions.values(), key=lambda a: a.features["device.payments_1m"])
        assert [a.features["device.payments_1m"] for a in by_count] == [1, 2, 3, 4, 5, 6]
        assert [a.outcome for a in by_count] == [RiskOutcome.APPROVE] * 3 + [RiskOutcome.REVIEW] * 3
        assert by_count[3].fired[0].inputs == {"device.payments_1m": 4, "amount": 100}
        assert all(a.ruleset_version == 2 for a in by_count)

        # Many accounts from one IP: the third distinct account and after are rejected.
        farm = [
            await pay(
                client, "m-shop", f"u-ip{i}", cny(20), client_ip="198.51.100.7", account=f"f{i}"
            )
            for i in range(5)
        ]
        assert await log.until(lambda: all(log.of(RiskAssessed, payment_id=p) for p in farm))
        outcomes = sorted(
            (
                log.of(RiskAssessed, payment_id=p)[0].features["ip.distinct_accounts_1h"],
                log.of(RiskAssessed, payment_id=p)[0].outcome,
            )
            for p in farm
        )
        assert outcomes == [(1, RiskOutcome.APPROVE), (2, RiskOutcome.APPROVE)] + [
            (n, RiskOutcome.REJECT) for n in (3, 4, 5)
        ]

        # A user crossing the daily limit (CNY 1000) over a series; the rejected amount is
        # released, so a later small payment still fits.
        series = []
        for units in (400, 400, 400, 150):
            payment = await pay(client, "m-shop", "u-daily", cny(units))
            series.append(await log.one(RiskAssessed, payment_id=payment))
        assert [a.outcome for a in series] == [
            RiskOutcome.APPROVE,
            RiskOutcome.APPROVE,
            RiskOutcome.REJECT,
            RiskOutcome.APPROVE,
        ]
        assert fired(series[2]) == ["limit.user_daily_amount"]
        assert series[2].fired[0].inputs["user.daily_amount"] == 80_000
        assert series[3].features["user.daily_amount"] == 80_000

        # Delay: a large USD payment is held two seconds, then released by the timer.
        large = await pay(client, "m-shop", "u-usd", Money(600_000, "USD"))
        delayed = await log.one(RiskAssessed, payment_id=large)
        assert delayed.outcome is RiskOutcome.DELAY and delayed.hold_until is not None
        released = await log.one(RiskHoldResolved, payment_id=large, timeout=30)
        assert released.resolution is HoldResolution.RELEASED
        assert released.resolved_by == "system:delay-timer"
        assert released.occurred_at >= delayed.hold_until

        # Review queue: the three held card-testing payments, released or rejected by people.
        held = [a.payment_id for a in by_count[3:]]
        assert await _listed(stack, held)
        cli(stack, "review", "approve", held[0], "--reviewer", "rita", "--reason", "known user")
        cli(stack, "review", "reject", held[1], "--reviewer", "rita", "--reason", "card testing")
        approved = await log.one(RiskHoldResolved, payment_id=held[0])
        rejected = await log.one(RiskHoldResolved, payment_id=held[1])
        assert (approved.resolution, approved.resolved_by) == (HoldResolution.RELEASED, "rita")
        assert (rejected.resolution, rejected.reason) == (HoldResolution.REJECTED, "card testing")

        # A rule-set version published mid-stream decides the next payment, no restart.
        before = await log.one(
            RiskAssessed, payment_id=await pay(client, "m-shop", "u-j", Money(500, "JPY"))
        )
        await publish_rules(risk, 3, NO_JPY)
        await settle(1.5)
        after = await log.one(
            RiskAssessed, payment_id=await pay(client, "m-shop", "u-j", Money(500, "JPY"))
        )
        assert (before.outcome, before.ruleset_version) == (RiskOutcome.APPROVE, 2)
        assert (after.outcome, after.ruleset_version, fired(after)) == (
            RiskOutcome.REJECT,
            3,
            ["no_jpy"],
        )

        # After: a merchant whose chargebacks climb is alerted once and downgraded A -> B,
        # which tightens its single-payment limit to CNY 500 (the feedback loop).
        sales = [await pay(client, "m-cb", f"u-cb{i}", cny(600)) for i in range(4)]
        for payment in sales:
            assert (await log.one(RiskAssessed, payment_id=payment)).outcome is RiskOutcome.APPROVE
        for number, payment in enumerate(sales[:3]):
            await risk.record_chargeback(payment, "m-cb", f"cb-{number}", cny(600), "fraud")
        change = await log.one(MerchantRatingChanged, merchant_id="m-cb", timeout=60)
        assert (change.previous_rating, change.rating) == ("A", "B")
        assert "chargebacks_climbing" in change.reason
        await settle(1.5)
        tightened = await log.one(
            RiskAssessed, payment_id=await pay(client, "m-cb", "u-cb9", cny(600))
        )
        assert tightened.outcome is RiskOutcome.REJECT
        assert fired(tightened) == ["limit.single_payment"]
        assert tightened.merchant_rating == "B"
        alerts = log.of(RiskAlert, merchant_id="m-cb")
        assert [(a.alert, a.inputs["chargebacks_30d"]) for a in alerts] == [
            ("chargebacks_climbing", 3)
        ]

    # Backtest a candidate: the live version 3 plus a rule reviewing payments of one yuan or
    # less. It flips exactly the three card probes that were approved, and the JPY payment
    # approved under version 2, which no_jpy now rejects; nothing live is touched.
    candidate = tmp_path / "candidate.rules"
    candidate.write_text(
        scenario_rules(4, f"{NO_JPY}\nrule tiny_payments review when amount <= 100")
    )
    report = cli(stack, "backtest", "--rules", str(candidate))
    assert re.search(r"│ APPROVE │ REVIEW │\s+3 │\s+3\.00 CNY │", report), report
    assert re.search(r"│ APPROVE │ REJECT │\s+1 │\s+500 JPY │", report), report
    changes = dict(re.findall(r"│ ([A-Z]+)\s*│\s+[\d,]+ │\s+[\d,]+ │\s+([-+]\d+) │", report))
    assert changes == {"APPROVE": "-4", "DELAY": "+0", "REVIEW": "+3", "REJECT": "+1"}, report


async def _listed(stack, payment_ids: list[str]) -> bool:
    for _ in range(60):
        listing = cli(stack, "review", "list")
        if all(payment in listing for payment in payment_ids):
            return True
        await asyncio.sleep(0.5)
    return False
