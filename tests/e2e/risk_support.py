"""Driving the risk stage on the real broker: payments in, the log's answers out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.client import PaymentsClient
from events.identity import payment_id_for
from events.money import Money
from events.records import AvroRecord, PaymentMethod
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec

R = TypeVar("R", bound=AvroRecord)

# The rule set the scenarios are written against, independent of the shipped defaults.
SCENARIO_RULES = """\
version {version}
limit A single_payment CNY 10000.00
limit A user_daily_amount CNY 1000.00
limit B single_payment CNY 500.00
limit B user_daily_amount CNY 1000.00
rule card_testing review when device.payments_1m >= 4 and amount <= 500
rule many_accounts_one_ip reject when ip.distinct_accounts_1h >= 3
rule large_usd_payment delay 2s when currency == "USD" and amount >= 500000
alert chargebacks_climbing downgrade when chargebacks_30d >= 3
{extra}
"""


def scenario_rules(version: int, extra: str = "") -> str:
    """The scenario rule set as a given version, with extra lines."""
    return SCENARIO_RULES.format(version=version, extra=extra)


class RiskLog:
    """Reads the payment log, alerts, merchants and payout log of a namespace from the start."""

    def __init__(self, bootstrap: str, catalogue: TopicCatalogue) -> None:
        self._bootstrap = bootstrap
        self._specs = [
            catalogue.events,
            catalogue.alerts,
            catalogue.merchants,
            catalogue.payout_events,
        ]
        self._codec = EventCodec(ManifestSchemas())
        self.records: dict[str, AvroRecord] = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> RiskLog:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap)
        await self._consumer.start()
        partitions = [
            TopicPartition(spec.name, n) for spec in self._specs for n in range(spec.partitions)
        ]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self) -> None:
        """Read what has arrived (copies with the same id count once)."""
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=200)
        for messages in batch.values():
            for message in messages:
                try:
                    record = self._codec.decode(message.value)
                except DecodeError:
                    continue
                self.records.setdefault(_identity(record), record)

    def of(self, kind: type[R], **fields: Any) -> list[R]:
        """The records of ``kind`` whose fields have the given values."""
        return [
            record
            for record in self.records.values()
            if isinstance(record, kind)
            and all(getattr(record, name) == value for name, value in fields.items())
        ]

    async def until(self, ready: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Poll until ``ready()`` or the timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                return False
            await self.poll()
        return True

    async def one(self, kind: type[R], timeout: float = 60.0, **fields: Any) -> R:
        """Wait for exactly one record of ``kind`` with those fields and return it."""
        found = await self.until(lambda: bool(self.of(kind, **fields)), timeout)
        assert found, f"no {kind.__name__} with {fields} within {timeout} s"
        (record,) = self.of(kind, **fields)
        return record


def _identity(record: AvroRecord) -> str:
    for name in ("event_id", "command_id", "dead_letter_id"):
        if hasattr(record, name):
            return f"{type(record).__name__}:{getattr(record, name)}"
    return f"{type(record).__name__}:{uuid.uuid4()}"


async def pay(
    client: PaymentsClient,
    merchant_id: str,
    user_id: str,
    amount: Money,
    *,
    device_id: str | None = None,
    client_ip: str | None = None,
    account: str | None = None,
) -> str:
    """Publish one payment; returns its payment id."""
    key = f"k-{uuid.uuid4().hex[:16]}"
    await client.request_payment(
        idempotency_key=key,
        merchant_id=merchant_id,
        order_id=f"o-{uuid.uuid4().hex[:12]}",
        user_id=user_id,
        amount=amount,
        method=PaymentMethod.CARD,
        device_id=device_id,
        client_ip=client_ip,
        account_fingerprint=account,
    )
    return payment_id_for(merchant_id, key)


async def settle(seconds: float) -> None:
    """Let a published change reach every worker's broadcast reader."""
    await asyncio.sleep(seconds)
