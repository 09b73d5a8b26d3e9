"""The risk processors in the Faust app: cases, feature store, merchant health.

Three agents, each over topics keyed the way its table is:
- ``risk-cases`` reads the payment log, the feature snapshots and the review commands (all keyed
  by payment id) and decides each payment;
- ``risk-features`` reads the fanned-out feature requests (keyed by dimension value) and keeps
  the velocity state of every user, device, IP, account and merchant;
- ``risk-health`` reads outcomes regrouped by merchant and raises alerts and rating changes.
Merchant profiles and the live rule set are read whole by every worker (``BroadcastReader``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from zoneinfo import ZoneInfo

import faust
from faust.types import EventT, StreamT

from events.dead_letters import ConsumedMessage, dead_letter_for_message
from events.records import (
    AvroRecord,
    CommandDeduplicated,
    PaymentAccepted,
    PaymentRejected,
    utc_now,
)
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureSnapshot,
    MerchantOutcome,
    ReviewDecision,
    RiskAssessed,
    RiskHoldResolved,
)
from events.topics import TopicCatalogue
from events.wire import DecodeError, EventCodec
from paystream.config import PaystreamSettings
from streams.kafka_io import offset_watch, produce, raw_topic
from streams.risk.aftercare import HealthDesk
from streams.risk.assessment import epoch_ms
from streams.risk.broadcast import BroadcastReader
from streams.risk.cases import CaseDesk, NoOpenHold
from streams.risk.feature_store import FeatureDesk
from streams.risk.outgoing import Outgoing
from streams.risk.state import RiskState

log = logging.getLogger(__name__)

CASES, FEATURES, HEALTH = "risk-cases", "risk-features", "risk-health"
# Payment-log records no risk desk reads: the desks' own decisions (regrouped when made),
# and those of the stages before risk other than acceptance.
PASSED_OVER = frozenset(
    cls.subject for cls in (RiskAssessed, RiskHoldResolved, PaymentRejected, CommandDeduplicated)
)
TIMER_INTERVAL = 0.25
Handler = Callable[[EventT[bytes], AvroRecord], Coroutine[Any, Any, list[Outgoing]]]


class RiskProcessors:
    """Wires the risk desks into one Faust app."""

    def __init__(
        self,
        app: faust.App,
        catalogue: TopicCatalogue,
        settings: PaystreamSettings,
        codec: EventCodec,
        bootstrap: str,
    ) -> None:
        self.app = app
        self.topics = catalogue
        self.codec = codec
        self.state = RiskState()
        self.ready = asyncio.Event()
        self.reader = BroadcastReader(
            bootstrap,
            [catalogue.merchants, catalogue.rulesets],
            codec,
            self.state.apply,
            self._broadcast_dead_letter,
        )
        partitions = catalogue.events.partitions
        self.cases = app.Table(CASES, key_type=str, partitions=partitions)
        self.features = app.Table(FEATURES, key_type=str, partitions=partitions)
        self.health = app.Table(HEALTH, key_type=str, partitions=partitions)
        zone = ZoneInfo(settings.business_timezone)
        timeout = settings.risk_gather_timeout_ms
        self.case_desk = CaseDesk(self.cases, self.state, codec, catalogue, zone, timeout)
        self.feature_desk = FeatureDesk(self.features, catalogue)
        self.health_desk = HealthDesk(self.health, self.state, catalogue)
        self._assigned: frozenset[Any] = frozenset()

    def install(self) -> None:
        """Register the agents, the broadcast reader and the case timer with the app."""
        topics = self.topics
        self._agent(
            CASES,
            raw_topic(self.app, topics.events, topics.risk_snapshots, topics.reviews),
            self._on_case_input,
        )
        self._agent(FEATURES, raw_topic(self.app, topics.risk_features), self._on_feature_input)
        self._agent(HEALTH, raw_topic(self.app, topics.risk_outcomes), self._on_health_input)
        self.app.task(self._keep_state)
        self.app.timer(TIMER_INTERVAL)(self._tick)

    def _agent(
        self,
        name: str,
        channel: Any,
        handle: Handler,
    ) -> None:
        watch = offset_watch(self.app, name)

        async def agent(stream: StreamT[bytes]) -> None:
            await self.ready.wait()
            async for event in stream.events():
                watch.check(event.message)
                await self._handle(name, event, handle)

        self.app.agent(channel, name=name)(agent)

    async def _handle(
        self,
        name: str,
        event: EventT[bytes],
        handle: Handler,
    ) -> None:
        try:
            if self.codec.subject_of(event.value) in PASSED_OVER:
                return
            record = self.codec.decode(event.value)
            outgoing = await handle(event, record)
        except (DecodeError, NoOpenHold) as error:
            await self._dead_letter(name, event.message, error)
            return
        for out in outgoing:
            await produce(self.app, out.topic, out.key, self.codec.encode(out.record))

    async def _on_case_input(self, event: EventT[bytes], record: AvroRecord) -> list[Outgoing]:
        message, now = event.message, utc_now()
        if isinstance(record, PaymentAccepted):
            await self._fresh_merchant(record.merchant_id)
            outgoing = self.case_desk.on_accepted(record, message.partition, now)
        elif isinstance(record, FeatureSnapshot):
            outgoing = self.case_desk.on_snapshot(record, now)
        elif isinstance(record, ReviewDecision):
            outgoing = self.case_desk.on_review(record, now)
        else:
            outgoing = self.case_desk.on_logged(record)
        for key in self.case_desk.purge(message.partition, epoch_ms(now)):
            self.cases.pop(key, None)
        return outgoing

    async def _on_feature_input(self, event: EventT[bytes], record: AvroRecord) -> list[Outgoing]:
        if isinstance(record, FeatureRequest):
            return self.feature_desk.on_request(record, event.message.offset)
        if isinstance(record, FeatureRelease):
            self.feature_desk.on_release(record, event.message.offset)
        return []

    async def _on_health_input(self, event: EventT[bytes], record: AvroRecord) -> list[Outgoing]:
        if not isinstance(record, MerchantOutcome):
            return []
        return self.health_desk.on_outcome(record, event.message.offset, utc_now())

    async def _fresh_merchant(self, merchant_id: str) -> None:
        """Read our own writes: a merchant approved a moment ago must not be refused."""
        profile = self.state.merchant(merchant_id)
        if profile is None or not profile.may_take_payments:
            try:
                await self.reader.caught_up(timeout=5.0)
            except TimeoutError:
                # Decide on what is known: an unknown merchant is refused, never let through.
                log.warning("merchant topics not caught up in 5 s; deciding %s", merchant_id)

    async def _keep_state(self) -> None:
        await self.reader.start()
        self.ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await self.reader.stop()

    async def _tick(self) -> None:
        if not self.ready.is_set():
            return
        assigned = frozenset(self.app.assignor.assigned_actives())
        if assigned != self._assigned:
            self._assigned = assigned
            self.case_desk.reindex()
        for out in self.case_desk.nudges(epoch_ms(utc_now())):
            await produce(self.app, out.topic, out.key, self.codec.encode(out.record))

    async def _dead_letter(
        self, processor: str, message: ConsumedMessage, error: Exception
    ) -> None:
        letter = dead_letter_for_message(processor, message, error)
        await produce(
            self.app, self.topics.dead_letters.name, message.key, self.codec.encode(letter)
        )

    async def _broadcast_dead_letter(self, message: ConsumedMessage, error: DecodeError) -> None:
        await self._dead_letter("risk-state", message, error)


def install_risk(
    app: faust.App,
    catalogue: TopicCatalogue,
    settings: PaystreamSettings,
    codec: EventCodec,
    bootstrap: str,
) -> RiskProcessors:
    """Install the risk processors into ``app``."""
    processors = RiskProcessors(app, catalogue, settings, codec, bootstrap)
    processors.install()
    return processors
