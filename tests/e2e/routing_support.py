"""Driving routing and dispatch on the real broker: simulated channels, a worker, a dispatcher."""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from channels.fleet import SimulatedFleet
from channels.simulator import OrderStatus, SimulatorServer, SimulatorSettings
from events.client import PaymentsClient
from events.identity import payment_id_for
from events.money import Money
from events.records import PaymentMethod
from events.risk_client import RiskClient
from events.routing_client import RoutingClient
from events.routing_records import PaymentCaptured, PaymentFailed, PaymentRouted
from streams.routing.policy_file import default_policy
from tests.e2e.risk_support import RiskLog, scenario_rules

MERCHANT = "shop-route"
DEFAULT_POLICY_TEXT = (
    Path(__file__).parents[2] / "streams/routing/default.policy.toml"
).read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def policy_text(version: int, **settings: str) -> str:
    """The shipped policy as ``version``, with ``key = value`` lines of its tables replaced
    (``exploration_bp="0"``) and card_b's quotas as given (``card_b_quota="{ count = 3 }"``)."""
    text = DEFAULT_POLICY_TEXT.replace(
        f"version = {default_policy().version}", f"version = {version}"
    )
    quota = settings.pop("card_b_quota", None)
    for key, value in settings.items():
        text, replaced = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {value}   ", text)
        assert replaced == 1, key
    if quota is not None:
        text = re.sub(r"(?m)^daily_quota = .*$", f"daily_quota = {quota}", text)
    return text


@dataclass
class RoutedPayments:
    """The fleet, the namespace's clients and the log, for one scenario."""

    fleet: SimulatedFleet
    payments: PaymentsClient
    log: RiskLog

    async def pay(
        self, method: PaymentMethod, amount_minor: int, channel: str | None = None
    ) -> str:
        """Publish one payment from a fresh user; returns its payment id."""
        key = f"k-{uuid.uuid4().hex[:16]}"
        await self.payments.request_payment(
            idempotency_key=key,
            merchant_id=MERCHANT,
            order_id=f"o-{uuid.uuid4().hex[:12]}",
            user_id=f"u-{uuid.uuid4().hex[:8]}",
            amount=Money(amount_minor, "CNY"),
            method=method,
            channel=channel,
        )
        return payment_id_for(MERCHANT, key)

    async def ended(
        self, payment_id: str, timeout: float = 60.0
    ) -> PaymentCaptured | PaymentFailed:
        """Wait for the payment's capture or failure."""

        def done() -> bool:
            return bool(self.log.of(PaymentCaptured, payment_id=payment_id)) or bool(
                self.log.of(PaymentFailed, payment_id=payment_id)
            )

        assert await self.log.until(done, timeout), f"{payment_id} did not end in {timeout} s"
        ends = self.log.of(PaymentCaptured, payment_id=payment_id) or self.log.of(
            PaymentFailed, payment_id=payment_id
        )
        return ends[0]

    def routed(self, payment_id: str) -> PaymentRouted:
        """The payment's (first) routing decision."""
        return self.log.of(PaymentRouted, payment_id=payment_id)[0]

    def captured_by(self, payment_id: str) -> list[str]:
        """Every simulated channel whose book says it took the payment's money."""
        return [
            name
            for name, channel in self.fleet.channels.items()
            if (order := channel.simulator.book.get(payment_id)) is not None
            and order.status is OrderStatus.SUCCESS
        ]


async def onboard_and_publish(
    bootstrap: str, namespace: str, policy_text: str, extra_rules: str = ""
) -> None:
    """An A-rated merchant, generous rules, and the scenario's routing policy."""
    async with RiskClient(bootstrap, namespace=namespace) as risk:
        await risk.apply_merchant(MERCHANT, f"{MERCHANT} Ltd", "games")
        await risk.review_merchant(MERCHANT, "A", "test", "ok")
        rules = scenario_rules(2, extra_rules)
        await risk.publish_ruleset(2, str(hash(rules)), rules, "test")
    version = int(re.search(r"(?m)^version = (\d+)", policy_text).group(1))  # type: ignore[union-attr]
    async with RoutingClient(bootstrap, namespace=namespace) as routing:
        await routing.publish_policy(version, policy_text, "test")


async def restart_server(fleet: SimulatedFleet, name: str, port: int) -> None:
    """Serve a stopped simulator again on its old port."""
    channel = fleet[name]
    channel.server = SimulatorServer(channel.simulator.app, port=port)
    await channel.server.start()


def quick_settings() -> dict[str, SimulatorSettings]:
    """Fast channels, so a scenario spends its time on routing, not on waiting."""
    return {
        name: SimulatorSettings(latency_ms=2, latency_p99_ms=6, notify_delay_ms=5)
        for name in ("alipay", "wechat", "card", "card_b")
    }
