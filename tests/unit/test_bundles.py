"""Bundles: chunking by the limit, and positions that order every item along a partition."""

from __future__ import annotations

import pytest

from events.risk_records import FeatureRequest
from streams.engine.bundles import MAX_BUNDLE, Bundling, position
from tests.unit.samples import feature_request, request_bundle


def test_records_are_wrapped_in_order_at_most_limit_at_a_time():
    requests = [feature_request(n) for n in range(7)]
    bundles = Bundling(FeatureRequest, request_bundle, limit=3).bundles(requests)
    wrapped = [b.requests for b in bundles]  # type: ignore[attr-defined]
    assert wrapped == [requests[0:3], requests[3:6], requests[6:7]]


@pytest.mark.parametrize("limit", [0, MAX_BUNDLE + 1])
def test_a_limit_positions_cannot_number_is_refused(limit):
    with pytest.raises(ValueError, match="a bundle holds"):
        Bundling(FeatureRequest, request_bundle, limit=limit)


def test_positions_grow_with_the_offset_then_the_index():
    ordered = [(5, 0), (5, 1), (5, MAX_BUNDLE - 1), (6, 0), (7, 3)]
    numbers = [position(offset, index) for offset, index in ordered]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)


def test_an_index_beyond_a_bundle_is_refused():
    with pytest.raises(ValueError, match="outside a bundle"):
        position(1, MAX_BUNDLE)
