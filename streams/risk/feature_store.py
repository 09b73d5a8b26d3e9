"""The feature store: velocity state per dimension value, kept where its partition is processed.

``FeatureDesk`` is the logic over any mutable mapping (a dict in tests, a changelogged state
store keyed by '<dimension>:<value>' in the worker). Each entry keeps its ``DimensionState``
live, and remembers the position (offset, and index within a bundle) of the last request it
applied in the same write as the state: a request redelivered after a crash is recognised and
not counted twice.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from events.risk_records import FeatureRelease, FeatureRequest, FeatureSnapshot
from events.topics import TopicCatalogue
from streams.engine.outgoing import Outgoing
from streams.risk.velocity import DimensionState, Observation

Entry = dict[str, Any]


def entry_key(dimension: str, value: str) -> str:
    """The table key of one dimension value (the same text as its Kafka key)."""
    return f"{dimension}:{value}"


class FeatureDesk:
    """Counts each payment under each dimension value once and answers with the features."""

    def __init__(self, entries: MutableMapping[str, Entry], topics: TopicCatalogue) -> None:
        self._entries = entries
        self._topics = topics

    def on_request(self, request: FeatureRequest, position: int) -> list[Outgoing]:
        """Observe the payment and send this dimension's features back to its case."""
        key = entry_key(request.dimension, request.value)
        entry = self._entries.get(key)
        # A request sent again from a new position: a command replayed after a crash whose
        # case had not reached its changelog is fanned out a second time.
        if entry is not None and (
            position <= entry["position"] or request.payment_id == entry["last_payment"]
        ):
            return self._repeat(entry, request)
        state = entry["state"] if entry else DimensionState.new(request.dimension)
        features = state.observe(_observation(request))
        self._entries[key] = {
            "position": position,
            "state": state,
            "last_payment": request.payment_id,
            "last_features": features,
        }
        return [self._snapshot(request, features)]

    def on_release(self, release: FeatureRelease, position: int) -> None:
        """Take a rejected payment's amount out of the value's daily total."""
        key = entry_key(release.dimension, release.value)
        entry = self._entries.get(key)
        if entry is None or position <= entry["position"]:
            return
        entry["state"].release(release.business_date, release.currency, release.amount_minor)
        self._entries[key] = {**entry, "position": position}

    def _repeat(self, entry: Entry, request: FeatureRequest) -> list[Outgoing]:
        # Already counted. The answer is known only for the newest payment; an older one's
        # case decides on its timeout instead of on counts taken twice.
        if entry["last_payment"] != request.payment_id:
            return []
        return [self._snapshot(request, entry["last_features"])]

    def _snapshot(self, request: FeatureRequest, features: dict[str, Any]) -> Outgoing:
        snapshot = FeatureSnapshot(
            payment_id=request.payment_id, dimension=request.dimension, features=features
        )
        return Outgoing(self._topics.risk_snapshots.name, request.payment_id.encode(), snapshot)


class FeatureEntries:
    """The store codec of feature entries: the live ``DimensionState`` as its row."""

    def to_json(self, entry: Entry) -> Entry:
        """The entry with its state as a row, serialised at once by the store."""
        return {**entry, "state": entry["state"].to_row()}

    def from_json(self, data: Entry) -> Entry:
        """The entry with its state live again."""
        return {**data, "state": DimensionState.from_stored(data["state"])}


def _observation(request: FeatureRequest) -> Observation:
    return Observation(
        at_ms=request.at_ms,
        amount_minor=request.amount_minor,
        currency=request.currency,
        business_date=request.business_date,
        partners=request.partners,
    )
