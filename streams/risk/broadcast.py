"""Reading whole topics on every worker: the merchants and rule-set topics.

A consumer-group member sees only its partitions; risk needs every merchant and the newest rule
set everywhere, so each worker reads these topics itself, from the start, and keeps tailing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from events.dead_letters import ConsumedMessage
from events.records import AvroRecord
from events.topics import TopicSpec
from events.wire import DecodeError, EventCodec

log = logging.getLogger(__name__)

Undecodable = Callable[[ConsumedMessage, DecodeError], Awaitable[None]]


class BroadcastReader:
    """Feeds every record of ``topics`` to ``apply``, in log order per partition.

    The partitions are the catalogue's: the worker creates the topics before it starts.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: list[TopicSpec],
        codec: EventCodec,
        apply: Callable[[AvroRecord], None],
        undecodable: Undecodable,
    ) -> None:
        self._bootstrap = bootstrap
        self._consumer: AIOKafkaConsumer | None = None
        self._topics = topics
        self._codec = codec
        self._apply = apply
        self._undecodable = undecodable
        self._positions: dict[TopicPartition, int] = {}
        # Wall-clock ms at which the newest completed catch-up looked up the topics' ends.
        self._caught_up_ms = 0
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 20.0) -> None:
        """Assign every partition from the beginning, catch up, then tail in the background.

        A start that has not caught up within ``timeout`` is abandoned and made again: the
        risk agents wait for this reader, so a stuck start would stop risk control.
        """
        while True:
            try:
                async with asyncio.timeout(timeout):
                    await self._start_once()
                log.info("broadcast reader caught up with %s", [t.name for t in self._topics])
                return
            except TimeoutError:
                log.warning("broadcast reader not caught up in %.0f s; starting again", timeout)
                await self.stop()

    async def _start_once(self) -> None:
        self._positions, self._caught_up_ms = {}, 0
        # aiokafka binds its consumer to the running loop, so it is made here, not in __init__.
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        partitions = [
            TopicPartition(spec.name, number)
            for spec in self._topics
            for number in range(spec.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._tail(), name="broadcast-reader")
        self._task.add_done_callback(_report_end)
        await self.caught_up()

    async def stop(self) -> None:
        """Stop tailing and close the consumer."""
        task, consumer = self._task, self._consumer
        self._task = self._consumer = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if consumer is not None:
            await consumer.stop()

    async def caught_up(self, timeout: float = 30.0) -> None:
        """Wait until everything written to the topics before this call has been applied."""
        consumer = self._started()
        began_ms = int(time.time() * 1000)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self._reached(ends))
        self._caught_up_ms = max(self._caught_up_ms, began_ms)

    async def caught_up_with(self, written_ms: int, timeout: float = 30.0) -> None:
        """Wait until everything written to the topics before ``written_ms`` (epoch ms) has
        been applied; at once when a catch-up that began later has completed already."""
        if written_ms >= self._caught_up_ms:
            await self.caught_up(timeout)

    def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

    def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the broadcast reader is not started")
        return self._consumer

    async def _tail(self) -> None:
        consumer = self._started()
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except KafkaError as error:
                # Workers must keep the state they have and catch up when the broker is back.
                log.warning("broadcast reader could not fetch: %r", error)
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batches.items():
                for message in messages:
                    await self._apply_message(message)
                    self._positions[tp] = message.offset + 1
            await self._note_positions(consumer)

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            # The position also moves past transaction markers and deleted records.
            self._positions[tp] = max(self._positions.get(tp, 0), await consumer.position(tp))
        async with self._progress:
            self._progress.notify_all()

    async def _apply_message(self, message: ConsumedMessage) -> None:
        try:
            record = self._codec.decode(message.value)
        except DecodeError as error:
            # Every worker reads this record; the dead letter's derived id makes copies one.
            log.error("undecodable record on %s: %s", message.topic, error)
            await self._undecodable(message, error)
            return
        self._apply(record)


def _report_end(task: asyncio.Task[None]) -> None:
    # The tail only ends by cancellation; anything else would silently freeze the risk state.
    if not task.cancelled() and task.exception() is not None:
        log.error("broadcast reader stopped: %r", task.exception())
