"""The router: risk-approved payments get a channel, explained, on the payment log.

One stage, ``routing``, in its own consumer group over the payment log:
- a PaymentAccepted is remembered (the ``routing-waiting`` store) until risk has decided;
- refund commands (``refunds.commands``, co-partitioned with the log) are checked against the
  payment's capture and sent back to the channel that captured it (``streams.routing.refunds``);
- payout commands (``payouts.commands``, keyed by merchant) pass risk control and go to the
  payee's channel, on the payout log (``streams.routing.payouts``);
- a RiskAssessed APPROVE, or a RiskHoldResolved that releases a held payment, routes it now:
  PaymentRouted with every candidate and why the winner won (and PaymentFailed when no
  channel can take it); a rejection forgets it;
- every router reads the feedback topic whole (each attempt's result per channel, each routed
  payment's quota usage) and the published policies, so service metrics, quotas and the live
  policy are the same on every worker, and a new policy version applies without a restart.
A router counts its own decisions into the quotas at once and skips them when they come back
on the feedback topic; another router's count arrives with the topic's delay.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from events.identity import stage_event_id
from events.payout_records import (
    PayoutCompleted,
    PayoutFailed,
    PayoutRejected,
    PayoutRouted,
    RequestPayout,
)
from events.records import (
    AvroRecord,
    CommandDeduplicated,
    PaymentAccepted,
    PaymentMethod,
    PaymentRefunded,
    PaymentRejected,
    utc_now,
)
from events.refund_records import RefundFailed, RefundRejected, RefundRouted, RequestRefund
from events.risk_records import HoldResolution, RiskAssessed, RiskHoldResolved, RiskOutcome
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    ChannelNotified,
    ChannelObservation,
    ChannelUsage,
    PaymentCaptured,
    PaymentFailed,
    PaymentRouted,
    RouteCandidate,
    RoutingPolicyPublished,
)
from events.topics import TopicCatalogue
from events.wire import EventCodec
from streams.engine.broadcast import BroadcastReader, Undecodable
from streams.engine.kafka import Delivered
from streams.engine.outgoing import Outgoing
from streams.engine.processor import ProcessorSpec
from streams.engine.store import StateStore
from streams.risk.state import RiskState
from streams.routing.decision import RoutingDecision, RoutingRequest, apply_decision, route_payment
from streams.routing.health import HealthBoard
from streams.routing.payouts import PayoutDesk
from streams.routing.policy import RoutingPolicy
from streams.routing.policy_file import PolicyError, default_policy, parse_policy
from streams.routing.quotas import QuotaBook
from streams.routing.refunds import RefundDesk

log = logging.getLogger(__name__)

ROUTING = "routing"
# A payment cleared by risk longer ago than this is not charged when the router reaches it: the
# user and the merchant's app gave up on it long since.
DEFAULT_MAX_AGE_MS = 15 * 60 * 1000
EXPIRED = "EXPIRED"
# Payment-log records the router never reads: decoded by nobody here, skipped by subject.
PASSED_OVER = frozenset(
    cls.subject
    for cls in (
        PaymentRejected,
        CommandDeduplicated,
        PaymentRouted,
        ChannelAttemptPending,
        ChannelAttemptFailed,
        ChannelNotified,
        PaymentFailed,
        RefundRouted,
        RefundRejected,
        PayoutRouted,
        PayoutRejected,
    )
)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


class Router:
    """Routes each approved payment once, over the live policy, metrics and quotas."""

    def __init__(
        self,
        catalogue: TopicCatalogue,
        codec: EventCodec,
        bootstrap: str,
        zone: ZoneInfo,
        undecodable: Undecodable,
        policy: RoutingPolicy | None = None,
        max_age_ms: int = DEFAULT_MAX_AGE_MS,
    ) -> None:
        self.topics = catalogue
        self.zone = zone
        self.max_age_ms = max_age_ms
        self.policy = policy or default_policy()
        self.health = HealthBoard(self.policy.health)
        self.quotas = QuotaBook()
        self.instance = f"router-{uuid.uuid4().hex[:12]}"
        # The newest version published on the log (0: none yet, the shipped policy routes).
        self.published_version = 0
        self.waiting = StateStore(catalogue.routing_waiting)
        self.captures = StateStore(catalogue.routing_captures)
        self.refunds = RefundDesk(self.captures, catalogue)
        # Payouts pass risk control here: the merchants and the live rule set, read whole.
        self.risk = RiskState()
        self.payout_books = StateStore(catalogue.payout_books)
        self.payouts = PayoutDesk(
            self.payout_books, self.risk, self._payout_channels, zone, catalogue
        )
        self.reader = BroadcastReader(
            bootstrap,
            [
                catalogue.routing_policies,
                catalogue.routing_feedback,
                catalogue.merchants,
                catalogue.rulesets,
            ],
            codec,
            self.apply_feedback,
            undecodable,
        )

    def spec(self) -> ProcessorSpec:
        """The routing stage as a processor; start it once ``reader`` has started."""
        return ProcessorSpec(
            ROUTING,
            (
                self.topics.events,
                self.topics.refund_commands,
                self.topics.payout_commands,
                self.topics.payout_events,
            ),
            self.on_logged,
            stores=(self.waiting, self.captures, self.payout_books),
            passed_over=PASSED_OVER,
        )

    def on_logged(self, message: Delivered, record: AvroRecord) -> list[Outgoing]:
        """Remember accepted payments and route them when risk lets them through; keep captures
        and route the refunds asked of them."""
        if isinstance(record, PaymentAccepted):
            self._remember(record)
        elif isinstance(record, RiskAssessed):
            return self._on_assessed(record)
        elif isinstance(record, RiskHoldResolved):
            released = record.resolution is HoldResolution.RELEASED
            if not released:
                return self._forget(record.payment_id)
            return self._route(record.payment_id, record.occurred_at)
        elif isinstance(record, RequestPayout | PayoutCompleted | PayoutFailed):
            return self._on_payout_step(record)
        else:
            return self._on_refund_step(record)
        return []

    def _on_payout_step(self, record: AvroRecord) -> list[Outgoing]:
        if isinstance(record, RequestPayout):
            return self.payouts.on_request(record, utc_now())
        if isinstance(record, PayoutCompleted):
            self.payouts.on_completed(record)
        elif isinstance(record, PayoutFailed):
            self.payouts.on_failed(record)
        return []

    def _payout_channels(self) -> list[str]:
        return [name for name, channel in self.policy.channels.items() if channel.enabled]

    def _on_refund_step(self, record: AvroRecord) -> list[Outgoing]:
        if isinstance(record, RequestRefund):
            return self.refunds.on_request(record, utc_now())
        if isinstance(record, PaymentCaptured):
            self.refunds.on_captured(record)
        elif isinstance(record, PaymentRefunded):
            self.refunds.on_refunded(record)
        elif isinstance(record, RefundFailed):
            self.refunds.on_failed(record)
        return []

    def _remember(self, accepted: PaymentAccepted) -> None:
        if accepted.payment_id in self.waiting:
            return
        business_date = accepted.occurred_at.astimezone(self.zone).date().isoformat()
        request = RoutingRequest.from_accepted(accepted, business_date)
        self.waiting[accepted.payment_id] = _request_row(request)

    def _on_assessed(self, assessed: RiskAssessed) -> list[Outgoing]:
        if assessed.outcome is RiskOutcome.APPROVE:
            return self._route(assessed.payment_id, assessed.occurred_at)
        if assessed.outcome is RiskOutcome.REJECT:
            return self._forget(assessed.payment_id)
        return []  # held: routed when released

    def _forget(self, payment_id: str) -> list[Outgoing]:
        self.waiting.pop(payment_id, None)
        return []

    def _route(self, payment_id: str, cleared_at: datetime) -> list[Outgoing]:
        """Route a payment risk let through at ``cleared_at``; one cleared too long ago (a
        router reading old history, a backlog after a long outage) expires uncharged."""
        row = self.waiting.pop(payment_id, None)
        if row is None:
            return []  # routed already (a redelivery), or never accepted here
        now = utc_now()
        at_ms = epoch_ms(now)
        if at_ms - epoch_ms(cleared_at) > self.max_age_ms:
            return [self._logged(expired_event(_request(row), cleared_at, now))]
        decision = route_payment(_request(row), self.policy, self.health, self.quotas, at_ms)
        apply_decision(decision, self.health, self.quotas, at_ms)
        routed = routed_event(decision, now)
        out = [self._logged(routed)]
        if decision.channel is None:
            out.append(self._logged(unroutable_event(decision, now)))
        else:
            out.append(self._usage(decision, now))
        return out

    def _logged(self, record: PaymentRouted | PaymentFailed) -> Outgoing:
        return Outgoing(self.topics.events.name, record.payment_id.encode(), record)

    def _usage(self, decision: RoutingDecision, now: datetime) -> Outgoing:
        request = decision.request
        assert decision.channel is not None
        usage = ChannelUsage(
            event_id=stage_event_id(request.payment_id, "channel-usage"),
            occurred_at=now,
            channel=decision.channel,
            merchant_id=request.merchant_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            business_date=request.business_date,
            router=self.instance,
        )
        return Outgoing(self.topics.routing_feedback.name, decision.channel.encode(), usage)

    def apply_feedback(self, record: AvroRecord) -> None:
        """Apply one record of the broadcast topics: a policy, a result, another's usage."""
        if isinstance(record, ChannelObservation):
            self.health.observe(
                record.channel,
                record.succeeded,
                record.latency_ms,
                epoch_ms(record.occurred_at),
                record.timed_out,
                declined=record.declined,
            )
        elif isinstance(record, ChannelUsage) and record.router != self.instance:
            self.quotas.record(
                record.business_date,
                record.channel,
                record.merchant_id,
                record.currency,
                record.amount_minor,
            )
        elif isinstance(record, RoutingPolicyPublished):
            self._adopt(record)
        else:
            self.risk.apply(record)  # merchants and rule sets, for payouts

    def _adopt(self, published: RoutingPolicyPublished) -> None:
        if published.version <= self.published_version:
            log.warning("routing policy v%d is not newer than the live one", published.version)
            return
        try:
            policy = parse_policy(published.text, source=f"policy v{published.version}")
        except PolicyError as error:
            # Published unchecked (the command checks first): keep routing on the last one.
            log.error("routing policy v%d refused: %s", published.version, error)
            return
        self.policy, self.published_version = policy, published.version
        self.health.configure(policy.health)
        log.info("routing policy v%d is live", policy.version)


def routed_event(decision: RoutingDecision, now: datetime) -> PaymentRouted:
    """The log's record of a routing decision, with every candidate."""
    request = decision.request
    return PaymentRouted(
        event_id=stage_event_id(request.payment_id, "routed"),
        payment_id=request.payment_id,
        occurred_at=now,
        merchant_id=request.merchant_id,
        amount_minor=request.amount_minor,
        currency=request.currency,
        method=request.method,
        channel=decision.channel,
        fallbacks=list(decision.fallbacks),
        reason_code=str(decision.reason),
        reason=decision.explanation,
        policy_version=decision.policy_version,
        candidates=[_candidate(row) for row in decision.candidate_rows()],
    )


def _candidate(row: dict[str, Any]) -> RouteCandidate:
    eliminated = row.get("eliminated")
    return RouteCandidate(
        channel=row["channel"],
        fee_minor=row.get("fee_minor"),
        success_rate_bp=row.get("success_bp"),
        latency_ms=row.get("latency_ms"),
        eliminated=None if eliminated is None else str(eliminated),
        note=str(row.get("reason") or ""),
    )


def expired_event(request: RoutingRequest, cleared_at: datetime, now: datetime) -> PaymentFailed:
    """The end of a payment cleared too long ago to charge now."""
    detail = f"cleared by risk at {cleared_at.isoformat()}, too long ago to charge now"
    return _unrouted(request, EXPIRED, detail, now)


def unroutable_event(decision: RoutingDecision, now: datetime) -> PaymentFailed:
    """The end of a payment no channel can take."""
    return _unrouted(decision.request, str(decision.reason), decision.explanation, now)


def _unrouted(
    request: RoutingRequest, reason_code: str, detail: str, now: datetime
) -> PaymentFailed:
    return PaymentFailed(
        event_id=stage_event_id(request.payment_id, "failed"),
        payment_id=request.payment_id,
        occurred_at=now,
        merchant_id=request.merchant_id,
        amount_minor=request.amount_minor,
        currency=request.currency,
        reason_code=reason_code,
        detail=detail,
        channels_tried=[],
    )


def _request_row(request: RoutingRequest) -> list[Any]:
    return [
        request.payment_id,
        request.merchant_id,
        str(request.method),
        request.currency,
        request.amount_minor,
        request.business_date,
        request.region,
        request.requested_channel,
    ]


def _request(row: list[Any]) -> RoutingRequest:
    payment_id, merchant_id, method, currency, amount, business_date, region, requested = row
    return RoutingRequest(
        payment_id=payment_id,
        merchant_id=merchant_id,
        method=PaymentMethod(method),
        currency=currency,
        amount_minor=amount,
        business_date=business_date,
        region=region,
        requested_channel=requested,
    )
