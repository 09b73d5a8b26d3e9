"""``PaymentsClient``: how outside code publishes payment orders to paystream (asyncio).

Example::

    async with PaymentsClient("127.0.0.1:9092") as client:
        receipt = await client.request_payment(
            idempotency_key="order-1001-try",
            merchant_id="shop-42",
            order_id="1001",
            user_id="u-7",
            amount=Money(1999, "CNY"),
            method=PaymentMethod.ALIPAY,
        )
        print(receipt.payment_id)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.structs import RecordMetadata

from events.identity import payment_id_for, payout_id_for, refund_id_for
from events.money import Money
from events.payout_records import RequestPayout
from events.publisher import Publisher
from events.records import PaymentMethod, RequestPayment, utc_now
from events.refund_records import RequestRefund


class MissingIdempotencyKey(ValueError):
    """Every command needs a client idempotency key: retries are only safe with one."""


@dataclass(frozen=True)
class PaymentReceipt:
    """Proof that the broker durably stored a command, and the payment id it maps to."""

    payment_id: str
    command_id: str
    idempotency_key: str
    partition: int
    offset: int


class PaymentsClient(Publisher):
    """Publishes payment commands; stored means acknowledged by all in-sync replicas."""

    async def request_payment(
        self,
        *,
        idempotency_key: str,
        merchant_id: str,
        order_id: str,
        user_id: str,
        amount: Money,
        method: PaymentMethod = PaymentMethod.UNSPECIFIED,
        channel: str | None = None,
        device_id: str | None = None,
        client_ip: str | None = None,
        account_fingerprint: str | None = None,
        region: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> PaymentReceipt:
        """Ask for a payment; repeating the call with the same key is safe and changes nothing."""
        command = RequestPayment(
            command_id=str(uuid.uuid4()),
            idempotency_key=idempotency_key,
            issued_at=utc_now(),
            merchant_id=merchant_id,
            order_id=order_id,
            user_id=user_id,
            amount_minor=amount.amount_minor,
            currency=amount.currency,
            method=method,
            channel=channel,
            description=description,
            device_id=device_id,
            client_ip=client_ip,
            account_fingerprint=account_fingerprint,
            region=region,
            metadata=metadata or {},
        )
        return await self.publish(command)

    async def request_refund(
        self,
        *,
        idempotency_key: str,
        merchant_id: str,
        payment_id: str,
        amount: Money,
        reason: str = "",
    ) -> str:
        """Ask to give back all or part of a captured payment; returns the refund id. Repeating
        the call with the same key is safe: it is the same refund."""
        if not idempotency_key:
            raise MissingIdempotencyKey("a refund command needs an idempotency key")
        command = RequestRefund(
            command_id=str(uuid.uuid4()),
            idempotency_key=idempotency_key,
            issued_at=utc_now(),
            merchant_id=merchant_id,
            payment_id=payment_id,
            amount_minor=amount.amount_minor,
            currency=amount.currency,
            reason=reason,
        )
        await self._stored(self.topics.refund_commands.name, payment_id.encode(), command)
        return refund_id_for(merchant_id, idempotency_key)

    async def request_payout(
        self,
        *,
        idempotency_key: str,
        merchant_id: str,
        channel: str,
        payee_account: str,
        payee_name: str,
        amount: Money,
        remark: str = "",
    ) -> str:
        """Withdraw a merchant's (a shop's or a creator's) money to its account on ``channel``;
        returns the payout id. Repeating the call with the same key is the same payout."""
        if not idempotency_key:
            raise MissingIdempotencyKey("a payout command needs an idempotency key")
        command = RequestPayout(
            command_id=str(uuid.uuid4()),
            idempotency_key=idempotency_key,
            issued_at=utc_now(),
            merchant_id=merchant_id,
            channel=channel,
            payee_account=payee_account,
            payee_name=payee_name,
            amount_minor=amount.amount_minor,
            currency=amount.currency,
            remark=remark,
        )
        await self._stored(self.topics.payout_commands.name, merchant_id.encode(), command)
        return payout_id_for(merchant_id, idempotency_key)

    async def publish(self, command: RequestPayment) -> PaymentReceipt:
        """Publish a prepared command as it is; the processor, not the client, judges it."""
        (receipt,) = await self.publish_many([command])
        return receipt

    async def publish_many(self, commands: Iterable[RequestPayment]) -> list[PaymentReceipt]:
        """Publish many commands pipelined (one round trip per batch, not per command)."""
        pending = [(command, await self._send(command)) for command in commands]
        stored = await asyncio.gather(*(future for _, future in pending))
        return [
            PaymentReceipt(
                payment_id=payment_id_for(command.merchant_id, command.idempotency_key),
                command_id=command.command_id,
                idempotency_key=command.idempotency_key,
                partition=metadata.partition,
                offset=metadata.offset,
            )
            for (command, _), metadata in zip(pending, stored, strict=True)
        ]

    async def _send(self, command: RequestPayment) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = await self._producer.send(
            self.topics.commands.name, value=self._codec.encode(command), key=command_key(command)
        )
        return future


def command_key(command: RequestPayment) -> bytes:
    """The Kafka key of ``command`` on the commands topic: its payment id.

    Every repeat of a command lands in the partition that remembers its idempotency key, and
    in the partition of the payment log that carries its payment's story.
    """
    if not command.idempotency_key:
        raise MissingIdempotencyKey(f"command {command.command_id} has no idempotency key")
    return payment_id_for(command.merchant_id, command.idempotency_key).encode()
