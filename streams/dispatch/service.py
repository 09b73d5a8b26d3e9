"""The dispatcher process: routed payments, refunds and payouts, through their channels.

It is a member of the consumer group ``<ns>.dispatch`` over the payment log and the payout
log. Each PaymentRouted starts its payment's dispatch as a task, each RefundRouted its
refund's, each PayoutRouted its payout's (the first routing of each wins: a second, written by
a router replaying after a crash, is ignored); ChannelNotified records wake the dispatches
waiting for them. A partition is committed up to its oldest unfinished dispatch, once
everything the finished ones emitted is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from zoneinfo import ZoneInfo

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from channels.base import ChannelAdapter
from events.dead_letters import dead_letter_for_message
from events.payout_records import PayoutCompleted, PayoutFailed, PayoutRouted
from events.records import AvroRecord
from events.refund_records import RefundRouted
from events.routing_records import ChannelNotified, ChannelObservation, PaymentRouted
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec
from streams.dispatch.attempts import DispatchPlan, PaymentDispatcher
from streams.dispatch.notices import NoticeBoard
from streams.dispatch.paying_out import PayoutDispatcher, PayoutPlan
from streams.dispatch.progress import PartitionProgress
from streams.dispatch.refunding import RefundDispatcher, RefundPlan
from streams.dispatch.settling import PATIENT, SettleTiming
from streams.engine.kafka import Delivered, ProducerLink, group_consumer

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")
Partition = tuple[str, int]  # (topic, partition)
Slot = tuple[str, int, int]  # (topic, partition, offset) of a routing being dispatched
ROUTINGS = frozenset({PaymentRouted.subject, RefundRouted.subject, PayoutRouted.subject})
COMMIT_INTERVAL = 1.0
IDLE_SLEEP = 0.002
# Routed payments taken per turn of the loop: the rest wait in the consumer.
HELPING = 500
RESTART_DELAY = 1.0


def plan_of(routed: PaymentRouted, zone: ZoneInfo = SHANGHAI) -> DispatchPlan:
    """What the dispatcher does with a routing decision: the winner first, then fallbacks."""
    assert routed.channel is not None
    fees = {c.channel: c.fee_minor for c in routed.candidates if c.fee_minor is not None}
    return DispatchPlan(
        payment_id=routed.payment_id,
        merchant_id=routed.merchant_id,
        amount_minor=routed.amount_minor,
        currency=routed.currency,
        subject=f"{routed.merchant_id} order",
        channels=(routed.channel, *routed.fallbacks),
        fees=fees,
        business_date=routed.occurred_at.astimezone(zone).date().isoformat(),
    )


class DispatchService:
    """Runs dispatches for the payment-log partitions this member holds."""

    def __init__(
        self,
        bootstrap: str,
        catalogue: TopicCatalogue,
        codec: EventCodec,
        adapters: Mapping[str, ChannelAdapter],
        notify_url: Callable[[str], str],
        timing: SettleTiming = PATIENT,
        session_timeout_ms: int = 10_000,
        zone: ZoneInfo = SHANGHAI,
    ) -> None:
        self._topics = catalogue
        self._zone = zone
        self._codec = codec
        self.producer = ProducerLink(bootstrap, unhurried=catalogue.unhurried())
        self.notices = NoticeBoard()
        self._dispatcher = PaymentDispatcher(adapters, self.notices, self.emit, notify_url, timing)
        self._refunder = RefundDispatcher(adapters, self.notices, self.emit, notify_url, timing)
        self._payer = PayoutDispatcher(adapters, self.notices, self.emit, timing)
        self._consumer: Consumer = group_consumer(
            bootstrap, f"{catalogue.namespace}.dispatch", session_timeout_ms, self._answered
        )
        self._progress: dict[Partition, PartitionProgress] = {}
        self._tasks: dict[Slot, asyncio.Task[None]] = {}
        # What is being dispatched, by partition: a second routing of one is ignored.
        self._started: dict[Partition, set[str]] = {}
        self._retiring: list[tuple[int, Slot]] = []  # (producer mark, slot)
        self._next_commit = time.monotonic() + COMMIT_INTERVAL

    def emit(self, record: AvroRecord) -> int:
        """Send one event (observations to the routers' feedback, the rest to the log); returns
        the producer mark that covers it."""
        if isinstance(record, ChannelObservation):
            topic, key = self._topics.routing_feedback.name, record.channel
        elif isinstance(record, PayoutCompleted | PayoutFailed):
            topic, key = self._topics.payout_events.name, record.merchant_id
        else:
            topic, key = self._topics.events.name, getattr(record, "payment_id", "")
        self.producer.produce(topic, key.encode(), self._codec.encode(record))
        return self.producer.mark()

    async def run(self, stopping: asyncio.Event) -> None:
        """Dispatch until ``stopping`` is set; then finish what is running and commit."""
        topics = [self._topics.events.name, self._topics.payout_events.name]
        self._consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked)
        try:
            while not stopping.is_set():
                batch = self._consumer.consume(HELPING, 0)
                for raw in batch:
                    self._take(raw)
                self._turn()
                await asyncio.sleep(0 if batch else IDLE_SLEEP)
            await self._drain()
        finally:
            self._consumer.close()

    def _turn(self) -> None:
        self.producer.serve()
        self._retire()
        if time.monotonic() >= self._next_commit:
            self._commit(wait=False)

    async def _drain(self, seconds: float = 10.0) -> None:
        """Let running dispatches finish (for a while), then commit what is done."""
        running = [task for task in self._tasks.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=seconds)
        self.producer.settle()
        self._retire()
        self._commit(wait=True)

    def _take(self, raw: Message) -> None:
        problem = raw.error()
        if problem is not None:
            if problem.fatal():
                raise KafkaException(problem)
            log.warning("consumer reports %s", problem)
            return
        message = Delivered.of(raw)
        progress = self._progress.setdefault(
            (message.topic, message.partition), PartitionProgress()
        )
        progress.read(message.offset)
        try:
            subject = self._codec.subject_of(message.value)
            if subject in ROUTINGS:
                self._routed(message, progress)
            elif subject == ChannelNotified.subject:
                self._notified(message)
        except DecodeError as error:
            letter = dead_letter_for_message("dispatch", message, error)
            self.producer.produce(
                self._topics.dead_letters.name, message.key, self._codec.encode(letter)
            )

    def _routed(self, message: Delivered, progress: PartitionProgress) -> None:
        routed = self._codec.decode(message.value)
        work = self._work(routed)
        if work is None:
            return
        subject, dispatch = work
        started = self._started.setdefault((message.topic, message.partition), set())
        if subject in started:
            return  # routed again by a replaying router: the first routing stands
        started.add(subject)
        progress.opened(message.offset)
        slot = (message.topic, message.partition, message.offset)
        task = asyncio.get_running_loop().create_task(self._dispatch(dispatch, subject, slot))
        task.add_done_callback(lambda _: started.discard(subject))
        self._tasks[slot] = task

    def _work(self, routed: AvroRecord) -> tuple[str, Callable[[], Awaitable[None]]] | None:
        """What a routing asks for: (the payment or refund id, its dispatch), or None."""
        if isinstance(routed, PaymentRouted) and routed.channel is not None:
            plan = plan_of(routed, self._zone)
            return routed.payment_id, lambda: self._dispatcher.dispatch(plan)
        if isinstance(routed, RefundRouted):
            refund = RefundPlan.of(routed)
            return routed.refund_id, lambda: self._refunder.dispatch(refund)
        if isinstance(routed, PayoutRouted):
            payout = PayoutPlan.of(routed)
            return routed.payout_id, lambda: self._payer.dispatch(payout)
        return None  # no channel: the router ended the payment itself

    def _notified(self, message: Delivered) -> None:
        notice = self._codec.decode(message.value)
        if isinstance(notice, ChannelNotified):
            self.notices.post(notice)

    async def _dispatch(
        self, dispatch: Callable[[], Awaitable[None]], subject: str, slot: Slot
    ) -> None:
        while True:
            try:
                await dispatch()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                # A dispatch is repeatable (the channels answer a repeated order or refund from
                # their records): a bug or an unexpected answer is retried, never skipped.
                log.exception("dispatch of %s failed; trying again", subject)
                await asyncio.sleep(RESTART_DELAY)
        self._retiring.append((self.producer.mark(), slot))

    def _retire(self) -> None:
        """Finish the offsets whose dispatch ended and whose events are all acknowledged."""
        still: list[tuple[int, Slot]] = []
        for mark, slot in self._retiring:
            if not self.producer.acknowledged(mark):
                still.append((mark, slot))
                continue
            self._tasks.pop(slot, None)
            topic, partition, offset = slot
            progress = self._progress.get((topic, partition))
            if progress is not None:
                progress.finished(offset)
        self._retiring = still

    def _commit(self, wait: bool) -> None:
        self._next_commit = time.monotonic() + COMMIT_INTERVAL
        offsets = [
            TopicPartition(topic, partition, position)
            for (topic, partition), progress in self._progress.items()
            if (position := progress.position()) is not None
        ]
        if not offsets:
            return
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            log.warning("dispatch: commit refused (%s); the next one sends it again", error)

    def _answered(self, error: KafkaError | None, _offsets: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            log.warning("dispatch: commit refused (%s)", error)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions leave: commit what is done; their running dispatches stop here and are
        replayed by the next owner."""
        self.producer.serve()
        self._retire()
        self._commit(wait=True)
        for tp in partitions:
            self._progress.pop((tp.topic, tp.partition), None)
            self._started.pop((tp.topic, tp.partition), None)
            leaving = [slot for slot in self._tasks if slot[:2] == (tp.topic, tp.partition)]
            for slot in leaving:
                self._tasks.pop(slot).cancel()

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("dispatch: %s", sorted((tp.topic, tp.partition) for tp in partitions))
