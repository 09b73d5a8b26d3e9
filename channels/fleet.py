"""A fleet of simulated channels on loopback, with the credentials file that reaches them.

The demo, the end-to-end tests and the benchmarks start one: every channel's simulator on its
own port, fresh keys on both sides, and a credentials document (``channels.credentials``) for
the dispatcher process. Each simulator's settings are live objects: a test changes a success
rate, starts an outage or loses notifications while traffic flows.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.alipay import AlipaySimulator, SimulatorKeys
from channels.card import CardSimulator
from channels.credentials import private_pem, public_pem
from channels.simulator import OrderBook, SimulatorServer, SimulatorSettings
from channels.wechat import MerchantAccount, PlatformKeys, WechatSimulator

# The channels of the shipped routing policy, by kind: two card acquirers compete on fees.
DEFAULT_FLEET = {"alipay": "alipay", "wechat": "wechat", "card": "card", "card_b": "card"}
NotifyUrl = Callable[[str], str]


class Simulated(Protocol):
    """What the fleet needs of a simulator."""

    @property
    def settings(self) -> SimulatorSettings:
        """The live settings."""
        ...

    @property
    def book(self) -> OrderBook:
        """The channel's orders."""
        ...

    @property
    def app(self) -> web.Application:
        """The HTTP application to serve."""
        ...

    def bill(self, day: date) -> str:
        """The day's bill in the channel's layout."""
        ...


@dataclass
class SimulatedChannel:
    """One running simulator, with the credentials entry its adapter needs (minus the URL)."""

    name: str
    simulator: Simulated
    entry: dict[str, Any]
    server: SimulatorServer | None = None

    @property
    def settings(self) -> SimulatorSettings:
        """The simulator's live settings."""
        return self.simulator.settings


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _alipay(name: str, settings: SimulatorSettings, _: NotifyUrl) -> SimulatedChannel:
    app_key, channel_key, app_id = _key(), _key(), f"2021{secrets.randbelow(10**12):012d}"
    simulator = AlipaySimulator(app_id, SimulatorKeys(channel_key, app_key.public_key()), settings)
    entry = {
        "kind": "alipay",
        "app_id": app_id,
        "app_private_key": private_pem(app_key),
        "channel_public_key": public_pem(channel_key.public_key()),
    }
    return SimulatedChannel(name, simulator, entry)


def _wechat(name: str, settings: SimulatorSettings, _: NotifyUrl) -> SimulatedChannel:
    merchant_key, platform_key = _key(), _key()
    mchid, appid = f"19{secrets.randbelow(10**8):08d}", f"wx{secrets.token_hex(8)}"
    merchant_serial, platform_serial = secrets.token_hex(20).upper(), secrets.token_hex(20).upper()
    apiv3_key = secrets.token_hex(16)
    simulator = WechatSimulator(
        MerchantAccount(mchid, appid, merchant_serial, merchant_key.public_key()),
        PlatformKeys(platform_serial, platform_key, apiv3_key),
        settings,
    )
    entry = {
        "kind": "wechat",
        "mchid": mchid,
        "appid": appid,
        "merchant_private_key": private_pem(merchant_key),
        "merchant_serial": merchant_serial,
        "platform_public_key": public_pem(platform_key.public_key()),
        "platform_serial": platform_serial,
        "apiv3_key": apiv3_key,
    }
    return SimulatedChannel(name, simulator, entry)


def _card(name: str, settings: SimulatorSettings, notify_url: NotifyUrl) -> SimulatedChannel:
    # A card acquirer sends its webhooks to the endpoint set on the account, not per order.
    secret_key, webhook_secret = (
        f"sk_test_{secrets.token_hex(12)}",
        f"whsec_{secrets.token_hex(16)}",
    )
    simulator = CardSimulator(
        settings,
        secret_key=secret_key,
        webhook_secrets=(webhook_secret,),
        webhook_url=notify_url(name),
    )
    entry = {"kind": "card", "secret_key": secret_key, "webhook_secret": webhook_secret}
    return SimulatedChannel(name, simulator, entry)


SIMULATOR_KINDS: dict[str, Callable[[str, SimulatorSettings, NotifyUrl], SimulatedChannel]] = {
    "alipay": _alipay,
    "wechat": _wechat,
    "card": _card,
}


class SimulatedFleet:
    """Simulators for a set of channels, served on loopback while the fleet runs."""

    def __init__(
        self,
        kinds: Mapping[str, str] = DEFAULT_FLEET,
        settings: Mapping[str, SimulatorSettings] | None = None,
        timeout_seconds: float = 5.0,
        notify_url: NotifyUrl = lambda channel: f"http://127.0.0.1:8470/notify/{channel}",
    ) -> None:
        chosen = settings or {}
        self.channels = {
            name: SIMULATOR_KINDS[kind](name, chosen.get(name, SimulatorSettings()), notify_url)
            for name, kind in kinds.items()
        }
        self._timeout_seconds = timeout_seconds

    def __getitem__(self, name: str) -> SimulatedChannel:
        return self.channels[name]

    async def start(self) -> None:
        """Serve every simulator on a free loopback port."""
        for channel in self.channels.values():
            channel.server = SimulatorServer(channel.simulator.app)
            await channel.server.start()

    async def stop(self) -> None:
        """Stop every simulator (pending notifications are dropped)."""
        for channel in self.channels.values():
            if channel.server is not None:
                await channel.server.stop()

    def credentials(self) -> dict[str, Any]:
        """The credentials document for adapters that speak to the running simulators."""
        return {
            "channels": {
                name: {
                    **channel.entry,
                    "base_url": channel.server.base_url if channel.server else "",
                    "timeout_seconds": self._timeout_seconds,
                }
                for name, channel in self.channels.items()
            }
        }

    def write_credentials(self, path: Path) -> Path:
        """Write the credentials document, readable by its owner only (it holds keys) from the
        moment it exists."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(json.dumps(self.credentials(), indent=2))
        return path

    async def __aenter__(self) -> SimulatedFleet:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
