"""What every channel simulator shares: its settings, its book of orders, its notifier, its server.

A simulator is a small HTTP service on loopback that speaks one channel's protocol. Each keeps
an order book (charges and refunds, idempotent on our order and refund ids, as the channels
are), answers after a latency drawn from a log-normal distribution, succeeds at a set rate,
can be in an outage, sends its asynchronous notifications on the channel's own re-send
schedule (losing a set share of them), and writes the day's bill from its book. Tests and the
``/_sim/settings`` route change the settings while it runs.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

# The z-score of the 99th percentile: a log-normal's p99 is median * exp(2.326 * sigma).
_Z99 = 2.3263


class SettingsRefused(ValueError):
    """A settings change naming an unknown setting or a value out of range."""


@dataclass
class SimulatorSettings:
    """How a simulator behaves; changed at run time by tests and the control route."""

    success_rate: float = 1.0  # share of charges that succeed
    latency_ms: float = 3.0  # median answer time
    latency_p99_ms: float = 10.0  # 99th percentile answer time
    outage: bool = False  # every call is answered as the channel answers when it is down
    lose_notifications: float = 0.0  # share of notifications never sent
    notify_delay_ms: float = 20.0  # from the order's completion to its first notification
    retry_scale: float = 1.0  # multiplies the channel's re-send schedule (tests shrink it)
    fee_bps: int = 60  # the channel's fee, basis points of the amount

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes``; raises SettingsRefused before changing anything if one is bad."""
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise SettingsRefused(f"unknown setting {name!r}")
            _check_setting(name, value)
        for name, value in changes.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return asdict(self)


def _check_setting(name: str, value: Any) -> None:
    if name == "outage":
        if not isinstance(value, bool):
            raise SettingsRefused("outage must be true or false")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SettingsRefused(f"{name} must be a number of at least 0")
    if name in {"success_rate", "lose_notifications"} and value > 1:
        raise SettingsRefused(f"{name} is a share between 0 and 1")


class Behaviour:
    """Draws answer times and outcomes from the settings with one seeded random source."""

    def __init__(self, settings: SimulatorSettings, seed: int = 7) -> None:
        self.settings = settings
        self._random = random.Random(seed)

    def answer_seconds(self) -> float:
        """A log-normal answer time with the set median and 99th percentile."""
        median = max(self.settings.latency_ms, 0.001)
        spread = max(self.settings.latency_p99_ms, median) / median
        sigma = math.log(spread) / _Z99
        return median * math.exp(sigma * self._random.gauss()) / 1000

    async def answer_delay(self) -> None:
        """Wait as long as the channel takes to answer."""
        await asyncio.sleep(self.answer_seconds())

    def succeeds(self) -> bool:
        """Whether the next charge succeeds."""
        return self._random.random() < self.settings.success_rate

    def loses_notification(self) -> bool:
        """Whether the next notification is lost."""
        return self._random.random() < self.settings.lose_notifications


class OrderStatus(StrEnum):
    """Where a simulated order stands."""

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass
class SimRefund:
    """A refund the simulated channel made."""

    refund_id: str
    channel_ref: str
    amount_minor: int
    created_at: datetime
    reason: str = ""


@dataclass
class SimOrder:
    """A charge the simulated channel took (or refused)."""

    order_id: str
    channel_ref: str
    amount_minor: int
    currency: str
    subject: str
    status: OrderStatus
    created_at: datetime
    fee_minor: int
    notify_url: str
    failure_code: str | None = None
    refunds: list[SimRefund] = field(default_factory=list)

    @property
    def refunded_minor(self) -> int:
        """Money already given back."""
        return sum(refund.amount_minor for refund in self.refunds)


class RefundRefused(ValueError):
    """A refund the channel turns down; ``code`` is the reason in the book's terms."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class OrderBook:
    """The simulated channel's orders, idempotent on our order and refund ids."""

    def __init__(self, ref_prefix: str) -> None:
        self._ref_prefix = ref_prefix
        self._orders: dict[str, SimOrder] = {}
        self._refunds: dict[str, SimRefund] = {}
        self._serial = 0

    def get(self, order_id: str) -> SimOrder | None:
        """The order, if the channel has seen it."""
        return self._orders.get(order_id)

    def orders(self) -> list[SimOrder]:
        """Every order, oldest first."""
        return list(self._orders.values())

    def add_charge(self, order: SimOrder) -> SimOrder:
        """Keep a new charge; the one already kept under the same order id wins."""
        return self._orders.setdefault(order.order_id, order)

    def next_ref(self, when: datetime) -> str:
        """A fresh channel transaction id."""
        self._serial += 1
        return f"{self._ref_prefix}{when:%Y%m%d}{self._serial:010d}"

    def refund(
        self, order_id: str, refund_id: str, amount_minor: int, when: datetime, reason: str = ""
    ) -> SimRefund:
        """Give money back once per refund id, never more than was captured."""
        if refund_id in self._refunds:
            return self._refunds[refund_id]
        order = self._orders.get(order_id)
        if order is None:
            raise RefundRefused("ORDER_NOT_FOUND", f"no order {order_id}")
        if order.status is not OrderStatus.SUCCESS:
            raise RefundRefused("ORDER_NOT_PAID", f"order {order_id} was not paid")
        if amount_minor <= 0 or amount_minor > order.amount_minor - order.refunded_minor:
            raise RefundRefused("REFUND_AMOUNT_INVALID", "refund exceeds what is left")
        refund = SimRefund(refund_id, self.next_ref(when), amount_minor, when, reason)
        order.refunds.append(refund)
        self._refunds[refund_id] = refund
        return refund

    def refunds_on(self, day: date, zone: ZoneInfo) -> list[tuple[SimOrder, SimRefund]]:
        """Refunds made on ``day`` in the channel's time zone, with their orders."""
        return [
            (order, refund)
            for order in self._orders.values()
            for refund in order.refunds
            if refund.created_at.astimezone(zone).date() == day
        ]

    def charges_on(self, day: date, zone: ZoneInfo) -> list[SimOrder]:
        """Successful charges completed on ``day`` in the channel's time zone."""
        return [
            order
            for order in self._orders.values()
            if order.status is OrderStatus.SUCCESS
            and order.created_at.astimezone(zone).date() == day
        ]


def fee_for(amount_minor: int, fee_bps: int) -> int:
    """The channel's fee on an amount, rounded half up to a minor unit."""
    return (amount_minor * fee_bps + 5_000) // 10_000


Delivery = Callable[[], Awaitable[bool]]


class Notifier:
    """Sends notifications on a channel's re-send schedule until one is acknowledged."""

    def __init__(self, schedule_seconds: Sequence[float], behaviour: Behaviour) -> None:
        self._schedule = tuple(schedule_seconds)
        self._behaviour = behaviour
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.lost = 0
        self.acknowledged = 0

    def notify(self, deliver: Delivery) -> None:
        """Deliver in the background: first after the set delay, then on the schedule."""
        if self._behaviour.loses_notification():
            self.lost += 1
            return
        task = asyncio.get_running_loop().create_task(self._run(deliver))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, deliver: Delivery) -> None:
        settings = self._behaviour.settings
        first = settings.notify_delay_ms / 1000
        for wait in (first, *(step * settings.retry_scale for step in self._schedule)):
            await asyncio.sleep(wait)
            self.sent += 1
            if await _attempt(deliver):
                self.acknowledged += 1
                return

    async def close(self) -> None:
        """Stop every pending delivery."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _attempt(deliver: Delivery) -> bool:
    # A merchant that cannot be reached is the same to the channel as one that said no.
    try:
        return await deliver()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def control_routes(
    settings: SimulatorSettings, bill: Callable[[date], str] | None = None
) -> list[web.RouteDef]:
    """``/_sim/settings`` (GET, POST a JSON object of changes) and ``/_sim/bill/YYYY-MM-DD``."""

    async def read(_: web.Request) -> web.Response:
        return web.json_response(settings.as_dict())

    async def change(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise SettingsRefused("send a JSON object of settings")
            settings.update(changes)
        except (ValueError, SettingsRefused) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(settings.as_dict())

    async def bill_text(request: web.Request) -> web.Response:
        try:
            day = date.fromisoformat(request.match_info["day"])
        except ValueError:
            return web.json_response({"error": "give the day as YYYY-MM-DD"}, status=400)
        if bill is None:
            return web.json_response({"error": "this channel writes no bill"}, status=404)
        return web.Response(text=bill(day), content_type="text/csv")

    return [
        web.get("/_sim/settings", read),
        web.post("/_sim/settings", change),
        web.get("/_sim/bill/{day}", bill_text),
    ]


class SimulatorServer:
    """Serves one simulator's application on loopback; the port is chosen when 0."""

    def __init__(self, app: web.Application, port: int = 0, host: str = "127.0.0.1") -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        """Start serving; returns the base URL."""
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self._host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and run the application's cleanups."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
