"""The topic catalogue: every topic paystream owns, its key, its records and its retention.

Names are prefixed with the configured namespace so several stacks (a demo, a test run, a
benchmark) can share one cluster without seeing each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.payout_records import (
    PayoutCompleted,
    PayoutFailed,
    PayoutRejected,
    PayoutRouted,
    RequestPayout,
)
from events.records import (
    AvroRecord,
    ChargebackReceived,
    CommandDeduplicated,
    DeadLetter,
    PaymentAccepted,
    PaymentRefunded,
    PaymentRejected,
    RequestPayment,
)
from events.refund_records import RefundFailed, RefundRejected, RefundRouted, RequestRefund
from events.risk_records import (
    FeatureRelease,
    FeatureRequest,
    FeatureRequestBatch,
    FeatureSnapshot,
    FeatureSnapshotBatch,
    MerchantApplied,
    MerchantLimitsOverridden,
    MerchantOutcome,
    MerchantOutcomeBatch,
    MerchantRatingChanged,
    MerchantReviewed,
    ReviewDecision,
    RiskAlert,
    RiskAssessed,
    RiskHoldResolved,
    RuleSetPublished,
)
from events.routing_records import (
    ChannelAttemptFailed,
    ChannelAttemptPending,
    ChannelNotified,
    ChannelObservation,
    ChannelUsage,
    PaymentCaptured,
    PaymentFailed,
    PaymentRouted,
    RoutingPolicyPublished,
)

FOREVER = -1
DAY_MS = 24 * 60 * 60 * 1000


class CleanupPolicy(StrEnum):
    """Kafka's ``cleanup.policy``."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, layout, retention, and the contract its users rely on."""

    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: CleanupPolicy
    key: str
    records: tuple[type[AvroRecord], ...]
    purpose: str
    ordering: str
    # Whether the worker sends this topic's records at once. Records of other topics linger to
    # travel in larger batches: no payment waits for them and nothing depends on their order
    # against other topics' records.
    prompt: bool = True

    def config(self) -> dict[str, str]:
        """The topic-level configuration set when the topic is created."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": str(self.cleanup_policy),
            # The log is the source of truth: never let an unclean leader drop acknowledged data.
            "unclean.leader.election.enable": "false",
        }


class TopicCatalogue:
    """The topics of one paystream namespace."""

    def __init__(self, namespace: str = "paystream", partitions: int = 4) -> None:
        self.namespace = namespace
        self.commands = TopicSpec(
            name=f"{namespace}.payments.commands",
            partitions=partitions,
            retention_ms=7 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="payment_id (UTF-8 UUID text): UUIDv5 of '<merchant_id>/<idempotency_key>' "
            "(events.identity.payment_id_for), co-partitioned with the payment log, so every "
            "repeat of a command lands in the partition that remembers its key",
            records=(RequestPayment,),
            purpose="Payment commands from producer clients (PaymentsClient, other languages).",
            ordering="Per idempotency key.",
        )
        self.events = TopicSpec(
            name=f"{namespace}.payments.events",
            partitions=partitions,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="payment_id (UTF-8 UUID text)",
            records=(
                PaymentAccepted,
                PaymentRejected,
                CommandDeduplicated,
                RiskAssessed,
                RiskHoldResolved,
                PaymentRouted,
                ChannelAttemptPending,
                ChannelAttemptFailed,
                ChannelNotified,
                PaymentCaptured,
                PaymentFailed,
                RefundRouted,
                RefundRejected,
                RefundFailed,
                PaymentRefunded,
                ChargebackReceived,
            ),
            purpose="The payment log and source of truth: every decision about every payment, "
            "kept forever. Projections and audits are rebuilt from it.",
            ordering="Per payment: all events of one payment are in one partition, in order.",
        )
        self.dead_letters = TopicSpec(
            name=f"{namespace}.dead-letters",
            partitions=1,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="the original message's key, unchanged",
            records=(DeadLetter,),
            purpose="Messages a processor could not decode or handle, whole, with the reason.",
            ordering="Arrival order (one partition).",
        )

        self._add_risk_topics(namespace, partitions)
        self._add_routing_topics(namespace, partitions)

    def _add_risk_topics(self, namespace: str, partitions: int) -> None:
        self.merchants = TopicSpec(
            name=f"{namespace}.merchants",
            partitions=partitions,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="merchant_id (UTF-8)",
            records=(
                MerchantApplied,
                MerchantReviewed,
                MerchantLimitsOverridden,
                MerchantRatingChanged,
            ),
            purpose="Merchant onboarding and risk ratings: application, review, approval or "
            "refusal, limit overrides, rating changes. Every worker reads all of it.",
            ordering="Per merchant.",
        )
        self.rulesets = TopicSpec(
            name=f"{namespace}.risk.rulesets",
            partitions=1,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="'ruleset' (UTF-8)",
            records=(RuleSetPublished,),
            purpose="Published rule-set versions; the newest is live on every worker.",
            ordering="Publication order (one partition).",
        )
        self.reviews = TopicSpec(
            name=f"{namespace}.risk.reviews",
            partitions=partitions,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="payment_id (UTF-8 UUID text), co-partitioned with the payment log",
            records=(ReviewDecision,),
            purpose="Reviewers' commands on held payments: release or reject.",
            ordering="Per payment.",
        )
        self.alerts = TopicSpec(
            name=f"{namespace}.risk.alerts",
            partitions=partitions,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="merchant_id (UTF-8)",
            records=(RiskAlert,),
            purpose="Alerts of the post-transaction analysis, with the values that raised them.",
            ordering="Per merchant.",
            prompt=False,
        )
        self.risk_features = TopicSpec(
            name=f"{namespace}.risk.features",
            partitions=partitions,
            retention_ms=7 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="'<dimension>:<value>' (UTF-8), e.g. 'device:dev-9'; a batch has no key and "
            "sits in the partition all its requests' keys hash to",
            records=(FeatureRequestRows, FeatureRequestBatch, FeatureRequest, FeatureRelease),
            purpose="Internal: payments fanned out to the feature store's partitions.",
            ordering="Per dimension value.",
        )
        self.risk_snapshots = TopicSpec(
            name=f"{namespace}.risk.snapshots",
            partitions=partitions,
            retention_ms=7 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="payment_id (UTF-8 UUID text), co-partitioned with the payment log; a batch "
            "has no key and sits in the partition all its payments' ids hash to",
            records=(FeatureSnapshotRows, FeatureSnapshotBatch, FeatureSnapshot),
            purpose="Internal: each dimension's features of a payment, back to its partition.",
            ordering="Per payment.",
        )
        self.risk_outcomes = TopicSpec(
            name=f"{namespace}.risk.outcomes",
            partitions=partitions,
            retention_ms=7 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="merchant_id (UTF-8); a batch has no key and sits in the partition all its "
            "merchants' ids hash to",
            records=(MerchantOutcomeBatch, MerchantOutcome),
            purpose="Internal: payment outcomes regrouped by merchant for its health counters.",
            ordering="Per merchant.",
            prompt=False,
        )
        # The intake keys and the cases are what stops a command replayed after a crash from
        # being fanned out to the feature store again (where it would count twice): their
        # changelogs go as promptly as the fan-out they guard.
        self.intake_keys = _changelog(
            namespace, "intake-keys", partitions, "merchant/idempotency key", "commands", True
        )
        self.risk_cases = _changelog(
            namespace, "risk-cases", partitions, "payment_id", "events", True
        )
        self.risk_feature_state = _changelog(
            namespace, "risk-features", partitions, "'<dimension>:<value>'", "risk.features"
        )
        self.risk_health = _changelog(
            namespace, "risk-health", partitions, "merchant_id", "risk.outcomes"
        )

    def _add_routing_topics(self, namespace: str, partitions: int) -> None:
        self.refund_commands = TopicSpec(
            name=f"{namespace}.refunds.commands",
            partitions=partitions,
            retention_ms=7 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="payment_id (UTF-8 UUID text) of the payment to refund, co-partitioned with the "
            "payment log",
            records=(RequestRefund,),
            purpose="Refund commands from merchants (PaymentsClient.request_refund).",
            ordering="Per payment.",
        )
        self.payout_commands = TopicSpec(
            name=f"{namespace}.payouts.commands",
            partitions=partitions,
            retention_ms=7 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="merchant_id (UTF-8) of the shop or creator withdrawing, co-partitioned with "
            "the payout log",
            records=(RequestPayout,),
            purpose="Payout commands: shops and creators withdrawing what they earned.",
            ordering="Per merchant.",
        )
        self.payout_events = TopicSpec(
            name=f"{namespace}.payouts.events",
            partitions=partitions,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="merchant_id (UTF-8)",
            records=(PayoutRouted, PayoutRejected, PayoutCompleted, PayoutFailed),
            purpose="The payout log: every decision about every payout and its outcome on the "
            "channel, kept forever.",
            ordering="Per merchant: a merchant's payouts are in one partition, in order.",
        )
        self.routing_policies = TopicSpec(
            name=f"{namespace}.routing.policies",
            partitions=1,
            retention_ms=FOREVER,
            cleanup_policy=CleanupPolicy.DELETE,
            key="'policy' (UTF-8)",
            records=(RoutingPolicyPublished,),
            purpose="Published routing policy versions; the newest is live on every router.",
            ordering="Publication order (one partition).",
        )
        self.routing_feedback = TopicSpec(
            name=f"{namespace}.routing.feedback",
            partitions=1,
            retention_ms=2 * DAY_MS,
            cleanup_policy=CleanupPolicy.DELETE,
            key="channel (UTF-8)",
            records=(ChannelObservation, ChannelUsage),
            purpose="Internal: each attempt's result per channel (service metrics) and each "
            "routed payment (quota usage). Every router reads all of it.",
            ordering="Arrival order (one partition).",
            prompt=False,
        )
        self.routing_waiting = _changelog(
            namespace, "routing-waiting", partitions, "payment_id", "events", True
        )
        # What each payment captured and gave back: a refund is checked against it, so it is
        # as prompt as the refunds it guards.
        self.routing_captures = _changelog(
            namespace, "routing-captures", partitions, "payment_id", "events", True
        )
        # A merchant's payouts of the last business days: a payout is checked against them.
        self.payout_books = _changelog(
            namespace, "payout-books", partitions, "merchant_id", "payouts.commands", True
        )

    def changelogs(self) -> tuple[TopicSpec, ...]:
        """The processors' state changelogs."""
        return (
            self.intake_keys,
            self.risk_cases,
            self.risk_feature_state,
            self.risk_health,
            self.routing_waiting,
            self.routing_captures,
            self.payout_books,
        )

    def unhurried(self) -> list[str]:
        """The names of the topics whose records may linger (see ``TopicSpec.prompt``)."""
        return [spec.name for spec in self.all() if not spec.prompt]

    def all(self) -> tuple[TopicSpec, ...]:
        """Every topic of the catalogue, in pipeline order."""
        return (
            self.commands,
            self.refund_commands,
            self.events,
            self.payout_commands,
            self.payout_events,
            self.merchants,
            self.rulesets,
            self.reviews,
            self.alerts,
            self.risk_features,
            self.risk_snapshots,
            self.risk_outcomes,
            self.routing_policies,
            self.routing_feedback,
            self.dead_letters,
            *self.changelogs(),
        )


def _changelog(
    namespace: str, store: str, partitions: int, key: str, source: str, prompt: bool = False
) -> TopicSpec:
    """The compacted changelog of one processor's state store."""
    return TopicSpec(
        name=f"{namespace}.state.{store}",
        partitions=partitions,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        key=f"{key} (UTF-8); partition = the {source} partition that wrote it",
        records=(),
        purpose=f"Internal: the changelog of the {store} store; a null value deletes a key.",
        ordering="Per key; the newest value wins.",
        prompt=prompt,
    )
