"""Routing and dispatch on the real broker, against the simulated channels over HTTP.

A worker (risk and routing) and a dispatcher run as real processes; the channels' simulators
run here, so a test can take one down, slow it, or lose its notifications while payments flow.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from channels.card.signing import signature_header
from channels.fleet import SimulatedFleet
from events.client import PaymentsClient
from events.money import Money
from events.payout_records import PayoutCompleted, PayoutFailed, PayoutRejected
from events.records import PaymentMethod, PaymentRefunded
from events.refund_records import RefundRejected, RefundRouted
from events.routing_client import RoutingClient
from events.routing_records import ChannelNotified, PaymentCaptured, PaymentFailed
from tests.e2e.risk_support import RiskLog
from tests.e2e.routing_support import (
    MERCHANT,
    RoutedPayments,
    free_port,
    onboard_and_publish,
    policy_text,
    quick_settings,
    restart_server,
)

pytestmark = pytest.mark.e2e
CARD = PaymentMethod.CARD
# 500.00 CNY: card_b (1.50% + 1.00) is cheaper than card (1.80% + 0.30) from 233.62 CNY up.
AMOUNT = 50_000


async def start_scenario(stack_factory, tmp_path: Path, policy: str, extra_rules: str = ""):
    port = free_port()
    fleet = SimulatedFleet(
        settings=quick_settings(),
        timeout_seconds=2.0,
        notify_url=lambda channel: f"http://127.0.0.1:{port}/notify/{channel}",
    )
    await fleet.start()
    credentials = fleet.write_credentials(tmp_path / "channels.json")
    stack = stack_factory(
        {
            "PAYSTREAM_CHANNELS_FILE": str(credentials),
            "PAYSTREAM_NOTIFY_PORT": str(port),
            "PAYSTREAM_CHANNEL_QUERY_SECONDS": "0.3",
        }
    )
    env = stack.environment
    await onboard_and_publish(env.bootstrap, env.namespace, policy, extra_rules)
    stack.start("worker")
    stack.start("dispatcher")
    return fleet, stack


async def test_outage_failover_recovery_named_channels_lost_notices_and_a_killed_dispatcher(
    stack_factory, tmp_path
):
    policy = policy_text(
        2,
        exploration_bp="0",
        band_bp="3000",
        failures_in_a_row="3",
        probe_interval_seconds="2",
    )
    fleet, stack = await start_scenario(stack_factory, tmp_path, policy)
    env = stack.environment
    try:
        async with (
            PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
            RiskLog(env.bootstrap, stack.catalogue) as log,
        ):
            run = RoutedPayments(fleet, client, log)
            # The cheaper acquirer takes card payments while it is healthy.
            for _ in range(4):
                paid = await run.ended(await run.pay(CARD, AMOUNT))
                assert isinstance(paid, PaymentCaptured) and paid.channel == "card_b", stack.logs()

            # card_b goes down: nothing reaches it, so each payment falls back to card, and
            # after three failures in a row card_b is out and payments go to card directly.
            port = int(fleet["card_b"].server.base_url.rsplit(":", 1)[1])
            await fleet["card_b"].server.stop()
            during = []
            for _ in range(7):
                payment_id = await run.pay(CARD, AMOUNT)
                ended = await run.ended(payment_id)
                assert isinstance(ended, PaymentCaptured) and ended.channel == "card"
                during.append(run.routed(payment_id))
            first_direct = next(n for n, r in enumerate(during) if r.channel == "card")
            assert first_direct <= 4, [r.channel for r in during]
            assert all(r.channel == "card" for r in during[first_direct:])
            out = next(c for c in during[-1].candidates if c.channel == "card_b")
            assert out.eliminated is not None, during[-1]

            # card_b comes back: after the probe interval one payment probes it, succeeds,
            # and card payments return to the cheaper acquirer.
            await restart_server(fleet, "card_b", port)
            await asyncio.sleep(2.5)
            after = []
            for _ in range(4):
                payment_id = await run.pay(CARD, AMOUNT)
                await run.ended(payment_id)
                after.append(run.routed(payment_id))
            assert after[0].channel == "card_b" and after[0].reason_code == "PROBE", after[0]
            assert [r.channel for r in after[1:]] == ["card_b"] * 3

            # A payment that names its channel goes there, whatever routing would pick.
            named = await run.pay(CARD, AMOUNT, channel="card")
            assert (await run.ended(named)).channel == "card"
            assert run.routed(named).reason_code == "REQUESTED"

            # WeChat loses every notification: the dispatcher's queries settle the payments.
            fleet["wechat"].settings.lose_notifications = 1.0
            for _ in range(3):
                ended = await run.ended(await run.pay(PaymentMethod.WECHAT_PAY, 1_999))
                assert isinstance(ended, PaymentCaptured) and ended.settled_by == "query"

            # A dispatcher killed while charges are in flight: nothing is lost, nothing is
            # captured twice, by one channel or by two.
            fleet["card_b"].settings.update({"latency_ms": 1200, "latency_p99_ms": 1500})
            in_flight = [await run.pay(CARD, AMOUNT) for _ in range(10)]
            await asyncio.sleep(0.8)
            await log.poll()
            unsettled = [p for p in in_flight if not log.of(PaymentCaptured, payment_id=p)]
            stack.processes["dispatcher"].kill()
            assert unsettled, "the dispatcher was killed with charges in flight"
            stack.start("dispatcher")
            for payment_id in in_flight:
                ended = await run.ended(payment_id, timeout=90)
                assert isinstance(ended, PaymentCaptured), ended
            for payment_id in [*in_flight, named]:
                assert len(run.captured_by(payment_id)) == 1, run.captured_by(payment_id)
    finally:
        stack.stop()
        await fleet.stop()


async def test_quotas_stop_a_channel_and_the_cheaper_one_wins_only_inside_the_band(
    stack_factory, tmp_path
):
    policy = policy_text(
        2,
        exploration_bp="0",
        band_bp="200",
        card_b_quota="{ count = 3 }",
    )
    fleet, stack = await start_scenario(stack_factory, tmp_path, policy)
    env = stack.environment
    try:
        async with (
            PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
            RiskLog(env.bootstrap, stack.catalogue) as log,
        ):
            run = RoutedPayments(fleet, client, log)
            routed = []
            for _ in range(5):
                payment_id = await run.pay(CARD, AMOUNT)
                await run.ended(payment_id)
                routed.append(run.routed(payment_id))
            assert [r.channel for r in routed] == ["card_b"] * 3 + ["card"] * 2, stack.logs()
            over = next(c for c in routed[-1].candidates if c.channel == "card_b")
            assert over.eliminated is not None and "quota" in over.eliminated.lower()

            # Without the cap, card_b is cheaper and wins while its success rate stays within
            # 2 points of card's; once its payments start failing it falls out of the band and
            # the dearer card wins on success rate.
            async with RoutingClient(env.bootstrap, namespace=env.namespace) as routing:
                await routing.publish_policy(3, policy_text(3, exploration_bp="0"), "test")
            await asyncio.sleep(1.0)
            fleet["card_b"].settings.success_rate = 0.0
            declined = []
            while len(declined) < 8:
                payment_id = await run.pay(CARD, AMOUNT)
                ended = await run.ended(payment_id)
                if run.routed(payment_id).channel == "card":
                    break
                assert isinstance(ended, PaymentFailed)
                declined.append(payment_id)
            assert 1 <= len(declined) < 8
            winner = run.routed(payment_id)
            assert winner.channel == "card" and winner.reason_code == "SUCCESS_RATE"
            cheaper = next(c for c in winner.candidates if c.channel == "card_b")
            dearer = next(c for c in winner.candidates if c.channel == "card")
            assert cheaper.fee_minor < dearer.fee_minor
            assert cheaper.success_rate_bp < dearer.success_rate_bp - 200
    finally:
        stack.stop()
        await fleet.stop()


async def test_refunds_go_back_through_the_capturing_channel_never_above_the_capture(
    stack_factory, tmp_path
):
    fleet, stack = await start_scenario(stack_factory, tmp_path, policy_text(2))
    env = stack.environment
    try:
        async with (
            PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
            RiskLog(env.bootstrap, stack.catalogue) as log,
        ):
            run = RoutedPayments(fleet, client, log)
            paid = {}
            for method, amount in ((PaymentMethod.WECHAT_PAY, 1_999), (CARD, AMOUNT)):
                payment_id = await run.pay(method, amount)
                captured = await run.ended(payment_id)
                assert isinstance(captured, PaymentCaptured), stack.logs()
                paid[method] = (payment_id, captured.channel)

            async def refund(method: PaymentMethod, amount: int, key: str) -> str:
                return await client.request_refund(
                    idempotency_key=key,
                    merchant_id=MERCHANT,
                    payment_id=paid[method][0],
                    amount=Money(amount, "CNY"),
                    reason="test",
                )

            # Two partial refunds of the WeChat payment, one repeated; the third asks for more
            # than is left and is refused; the rest of it then goes back too.
            first = await refund(PaymentMethod.WECHAT_PAY, 500, "w1")
            assert await refund(PaymentMethod.WECHAT_PAY, 500, "w1") == first
            await log.one(PaymentRefunded, refund_id=first)
            second = await refund(PaymentMethod.WECHAT_PAY, 500, "w2")
            await log.one(PaymentRefunded, refund_id=second)
            over = await refund(PaymentMethod.WECHAT_PAY, 1_000, "w3")
            rejected = await log.one(RefundRejected, refund_id=over)
            assert rejected.reason_code == "OVER_REFUNDABLE" and "999" in rejected.detail
            rest = await refund(PaymentMethod.WECHAT_PAY, 999, "w4")
            done = await log.one(PaymentRefunded, refund_id=rest)
            assert done.channel == "wechat" and done.channel_ref

            # The card payment is refunded in full, through the acquirer that captured it.
            whole = await refund(CARD, AMOUNT, "c1")
            card_refund = await log.one(PaymentRefunded, refund_id=whole)
            assert card_refund.channel == paid[CARD][1]

            wechat_order = fleet["wechat"].simulator.book.get(paid[PaymentMethod.WECHAT_PAY][0])
            assert sorted(r.amount_minor for r in wechat_order.refunds) == [500, 500, 999]
            card_order = fleet[paid[CARD][1]].simulator.book.get(paid[CARD][0])
            assert [r.amount_minor for r in card_order.refunds] == [AMOUNT]
            assert len(log.of(RefundRouted)) == 4
    finally:
        stack.stop()
        await fleet.stop()


async def test_repeated_late_and_forged_notifications_change_nothing(stack_factory, tmp_path):
    fleet, stack = await start_scenario(stack_factory, tmp_path, policy_text(2))
    env = stack.environment
    notify_port = env.settings["PAYSTREAM_NOTIFY_PORT"]
    secret = fleet.credentials()["channels"]["card"]["webhook_secret"]
    try:
        async with (
            PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
            RiskLog(env.bootstrap, stack.catalogue) as log,
            aiohttp.ClientSession() as http,
        ):
            run = RoutedPayments(fleet, client, log)
            payment_id = await run.pay(CARD, AMOUNT, channel="card")
            captured = await run.ended(payment_id)
            assert isinstance(captured, PaymentCaptured), stack.logs()

            async def notify(event: dict, signed_with: str = secret) -> int:
                body = json.dumps(event).encode()
                headers = {"Stripe-Signature": signature_header(body, [signed_with])}
                url = f"http://127.0.0.1:{notify_port}/notify/card"
                async with http.post(url, data=body, headers=headers) as answer:
                    return answer.status

            succeeded = _intent_event("evt_repeat", payment_id, "succeeded")
            late_failure = _intent_event("evt_late", payment_id, "requires_payment_method")
            assert [await notify(succeeded), await notify(succeeded)] == [200, 200]
            assert await notify(late_failure) == 200
            forged = _intent_event("evt_forged", payment_id, "succeeded")
            assert await notify(forged, "whsec_not_ours") == 400
            assert await log.until(lambda: len(log.of(ChannelNotified, notice_id="evt_late")) == 1)
            await asyncio.sleep(1.0)
            await log.poll()
            assert log.of(ChannelNotified, notice_id="evt_forged") == []
            assert len(log.of(ChannelNotified, notice_id="evt_repeat")) == 1
            assert log.of(PaymentFailed, payment_id=payment_id) == []
            assert [c.channel for c in log.of(PaymentCaptured, payment_id=payment_id)] == ["card"]
            assert run.captured_by(payment_id) == ["card"]
    finally:
        stack.stop()
        await fleet.stop()


def _intent_event(event_id: str, payment_id: str, status: str) -> dict:
    intent = {
        "id": "pi_forwarded",
        "object": "payment_intent",
        "amount": AMOUNT,
        "currency": "cny",
        "status": status,
        "metadata": {"order_id": payment_id},
    }
    kind = "succeeded" if status == "succeeded" else "payment_failed"
    return {
        "id": event_id,
        "object": "event",
        "type": f"payment_intent.{kind}",
        "created": int(time.time()),
        "data": {"object": intent},
    }


PAYOUT_LIMITS = "limit A single_payout CNY 1000.00\nlimit A daily_payout CNY 1500.00"


async def test_payouts_pass_risk_limits_and_are_paid_once_on_the_payees_channel(
    stack_factory, tmp_path
):
    fleet, stack = await start_scenario(stack_factory, tmp_path, policy_text(2), PAYOUT_LIMITS)
    env = stack.environment
    balances = {name: fleet[name].simulator.payout_balance_minor for name in fleet.channels}
    try:
        async with (
            PaymentsClient(env.bootstrap, namespace=env.namespace) as client,
            RiskLog(env.bootstrap, stack.catalogue) as log,
        ):

            async def pay_out(key: str, channel: str, account: str, amount: int) -> str:
                return await client.request_payout(
                    idempotency_key=key,
                    merchant_id=MERCHANT,
                    channel=channel,
                    payee_account=account,
                    payee_name="Han Meimei",
                    amount=Money(amount, "CNY"),
                    remark="earnings",
                )

            # Paid on each kind of channel (WeChat's batch settles by query); a repeat pays once.
            paid = [
                await pay_out("p1", "alipay", "creator@example.com", 50_000),
                await pay_out("p1", "alipay", "creator@example.com", 50_000),
                await pay_out("p2", "wechat", "o-creator-openid", 30_000),
                await pay_out("p3", "card_b", "acct_creator", 10_000),
            ]
            assert paid[0] == paid[1]
            for payout_id in {*paid}:
                done = await log.one(PayoutCompleted, payout_id=payout_id)
                assert done.channel_ref, done
            assert balances["alipay"] - fleet["alipay"].simulator.payout_balance_minor == 50_000
            assert balances["wechat"] - fleet["wechat"].simulator.payout_balance_minor == 30_000
            assert balances["card_b"] - fleet["card_b"].simulator.payout_balance_minor == 10_000

            # Risk control: over the single limit, then over what is left of the day's.
            over = await pay_out("p4", "alipay", "creator@example.com", 100_001)
            assert (await log.one(PayoutRejected, payout_id=over)).reason_code == (
                "limit.single_payout"
            )
            late = await pay_out("p5", "alipay", "creator@example.com", 60_001)
            rejected = await log.one(PayoutRejected, payout_id=late)
            assert rejected.reason_code == "limit.daily_payout" and "60000" in rejected.detail

            # A payee the channel does not know: the payout fails for good, and its amount is
            # the day's again.
            lost = await pay_out("p6", "alipay", "missing-creator@example.com", 60_000)
            failed = await log.one(PayoutFailed, payout_id=lost)
            assert failed.code == "PAYEE_NOT_EXIST"
            again = await pay_out("p7", "alipay", "creator@example.com", 60_000)
            assert (await log.one(PayoutCompleted, payout_id=again)).channel == "alipay"
    finally:
        stack.stop()
        await fleet.stop()
