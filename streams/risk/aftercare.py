"""After the payment: each merchant's health, alerts, and the rating feedback loop.

``HealthDesk`` keeps per merchant the counts of its payments, approvals, declines, refunds and
chargebacks over sliding windows (a changelogged store keyed by merchant id in the worker). The live
rule set's ``alert`` lines are evaluated after every outcome; an alert is raised when it starts
to hold, not again while it keeps holding. A ``downgrade`` alert lowers the merchant's rating
one step, which tightens its limits in the risk stage: the feedback loop.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from events.identity import derived_id
from events.risk_records import MerchantOutcome, MerchantRatingChanged, RiskAlert
from events.topics import TopicCatalogue
from streams.engine.outgoing import Outgoing
from streams.risk.health_windows import HealthWindows
from streams.risk.merchants import downgraded
from streams.risk.ruleset import FiredAlert, evaluate_alerts
from streams.risk.state import RiskState

Entry = dict[str, Any]


class HealthDesk:
    """Turns merchant outcomes into health features, alerts and rating changes."""

    def __init__(
        self, entries: MutableMapping[str, Entry], state: RiskState, topics: TopicCatalogue
    ) -> None:
        self._entries = entries
        self._state = state
        self._topics = topics

    def on_outcome(self, outcome: MerchantOutcome, position: int, now: datetime) -> list[Outgoing]:
        """Count the outcome once, then raise the alerts that started to hold."""
        entry = self._entries.get(outcome.merchant_id)
        if entry is not None and position <= entry["position"]:
            return []  # redelivered after a crash: counted already
        health = entry["health"] if entry else HealthWindows.new()
        for kind in outcome.kinds:
            health.record(kind, outcome.at_ms)
        fired = evaluate_alerts(
            self._state.ruleset, self.features(outcome.merchant_id, health, outcome.at_ms)
        )
        active = set(entry["active"]) if entry else set()
        raised = [alert for alert in fired if alert.alert not in active]
        self._entries[outcome.merchant_id] = {
            "position": position,
            "health": health,
            "active": sorted(alert.alert for alert in fired),
        }
        return [out for alert in raised for out in self._raise(outcome, alert, now)]

    def features(self, merchant_id: str, health: HealthWindows, at_ms: int) -> dict[str, Any]:
        """What the alert lines see: the health counters and the merchant's current rating."""
        profile = self._state.merchant(merchant_id)
        return {**health.features(at_ms), "rating": (profile.rating if profile else None) or ""}

    def _raise(self, outcome: MerchantOutcome, alert: FiredAlert, now: datetime) -> list[Outgoing]:
        merchant = outcome.merchant_id
        record = RiskAlert(
            event_id=derived_id(merchant, alert.alert, outcome.source_event_id),
            occurred_at=now,
            merchant_id=merchant,
            alert=alert.alert,
            downgrade=alert.downgrade,
            inputs=dict(alert.inputs),
            ruleset_version=self._state.ruleset.version,
        )
        outgoing = [Outgoing(self._topics.alerts.name, merchant.encode(), record)]
        change = self._downgrade(outcome, alert, now) if alert.downgrade else None
        if change is not None:
            outgoing.append(Outgoing(self._topics.merchants.name, merchant.encode(), change))
        return outgoing

    def _downgrade(
        self, outcome: MerchantOutcome, alert: FiredAlert, now: datetime
    ) -> MerchantRatingChanged | None:
        profile = self._state.merchant(outcome.merchant_id)
        if (
            profile is None
            or profile.rating is None
            or downgraded(profile.rating) == profile.rating
        ):
            return None
        inputs = ", ".join(f"{name}={value}" for name, value in sorted(alert.inputs.items()))
        return MerchantRatingChanged(
            event_id=derived_id(
                outcome.merchant_id, "rating", alert.alert, outcome.source_event_id
            ),
            merchant_id=outcome.merchant_id,
            occurred_at=now,
            previous_rating=profile.rating,
            rating=downgraded(profile.rating),
            reason=f"alert {alert.alert} ({inputs})",
            source=f"alert:{alert.alert}",
        )


class HealthEntries:
    """The store codec of health entries: the live ``HealthWindows`` as its row."""

    def to_json(self, entry: Entry) -> Entry:
        """The entry with its windows as a row, serialised at once by the store."""
        return {**entry, "health": entry["health"].to_row()}

    def from_json(self, data: Entry) -> Entry:
        """The entry with its windows live again."""
        return {**data, "health": HealthWindows.from_stored(data["health"])}
