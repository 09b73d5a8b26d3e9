"""The topic catalogue: every topic paystream owns, its key, its records and its retention.

Names are prefixed with the configured namespace so several stacks (a demo, a test run, a
benchmark) can share one cluster without seeing each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from events.records import (
    AvroRecord,
    CommandDeduplicated,
    DeadLetter,
    PaymentAccepted,
    PaymentRejected,
    RequestPayment,
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
            key="'<merchant_id>/<idempotency_key>' (UTF-8): every repeat of a command lands in "
            "the partition that remembers the key",
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
            records=(PaymentAccepted, PaymentRejected, CommandDeduplicated),
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

    def all(self) -> tuple[TopicSpec, ...]:
        """Every topic of the catalogue, in pipeline order."""
        return (self.commands, self.events, self.dead_letters)
