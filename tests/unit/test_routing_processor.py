"""The router's handling of the payment log: when a payment is routed, once, and explained."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from events.records import AvroRecord, PaymentMethod, utc_now
from events.risk_records import (
    HoldResolution,
    RiskAssessed,
    RiskHoldResolved,
    RiskOutcome,
)
from events.routing_records import (
    ChannelObservation,
    ChannelUsage,
    PaymentFailed,
    PaymentRouted,
    RoutingPolicyPublished,
)
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from streams.engine.kafka import Delivered
from streams.routing.policy_file import default_policy
from streams.routing.processor import Router
from tests.unit.samples import payment_accepted

AT = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
CODEC = EventCodec(ManifestSchemas())


def router_factory() -> Router:
    router = Router(
        TopicCatalogue("unit"), CODEC, "127.0.0.1:1", ZoneInfo("Asia/Shanghai"), lambda m, e: None
    )
    router.waiting.bind(0)
    router.captures.bind(0)
    return router


def message(record: AvroRecord) -> Delivered:
    return Delivered("unit.payments.events", 0, 7, 0, b"key", CODEC.encode(record))


def assessed(payment_id: str, outcome: RiskOutcome, at: datetime | None = None) -> RiskAssessed:
    return RiskAssessed(
        event_id=f"assessed-{payment_id}",
        payment_id=payment_id,
        occurred_at=at or utc_now(),
        merchant_id="shop-0042",
        order_id="ORD1",
        user_id="u1",
        amount_minor=64800,
        currency="CNY",
        method=PaymentMethod.WECHAT_PAY,
        requested_channel=None,
        outcome=outcome,
        hold_until=None,
        ruleset_version=1,
        ruleset_digest="d",
        merchant_rating="A",
        limit_overrides={},
        fired=[],
        features={},
    )


def resolved(payment_id: str, resolution: HoldResolution) -> RiskHoldResolved:
    return RiskHoldResolved(
        event_id=f"resolved-{payment_id}",
        payment_id=payment_id,
        occurred_at=utc_now(),
        merchant_id="shop-0042",
        amount_minor=64800,
        currency="CNY",
        hold=RiskOutcome.REVIEW,
        resolution=resolution,
        resolved_by="reviewer",
        reason="checked",
    )


def feed(router: Router, *records: AvroRecord) -> list[AvroRecord]:
    out = []
    for record in records:
        out += [o.record for o in router.on_logged(message(record), record)]
    return out


def routed_of(records: list[AvroRecord]) -> list[PaymentRouted]:
    return [r for r in records if isinstance(r, PaymentRouted)]


def test_an_approved_payment_is_routed_once_with_its_candidates_explained():
    router = router_factory()
    accepted = payment_accepted(channel=None, method=PaymentMethod.ALIPAY)
    out = feed(router, accepted, assessed(accepted.payment_id, RiskOutcome.APPROVE))
    (routed,) = routed_of(out)
    assert routed.channel == "alipay" and routed.reason_code == "SUCCESS_RATE"
    assert [c.channel for c in routed.candidates] == ["alipay"]
    assert routed.policy_version == default_policy().version
    assert CODEC.decode(CODEC.encode(routed)) == routed, "the explanation fits the schema"
    (usage,) = [r for r in out if isinstance(r, ChannelUsage)]
    assert usage.channel == "alipay" and usage.router == router.instance
    again = feed(router, assessed(accepted.payment_id, RiskOutcome.APPROVE))
    assert again == [], "a redelivered decision routes nothing twice"


def test_a_named_channel_goes_there_without_routing():
    router = router_factory()
    accepted = payment_accepted(channel="card_b", method=PaymentMethod.CARD)
    (routed,) = routed_of(
        feed(router, accepted, assessed(accepted.payment_id, RiskOutcome.APPROVE))
    )
    assert routed.channel == "card_b" and routed.reason_code == "REQUESTED"


def test_a_held_payment_waits_for_its_release_and_a_rejected_one_is_forgotten():
    router = router_factory()
    held = payment_accepted(idempotency_key="held", channel=None)
    assert feed(router, held, assessed(held.payment_id, RiskOutcome.REVIEW)) == []
    out = feed(router, resolved(held.payment_id, HoldResolution.RELEASED))
    assert routed_of(out)[0].channel == "wechat"
    refused = payment_accepted(idempotency_key="refused", channel=None)
    assert feed(router, refused, assessed(refused.payment_id, RiskOutcome.REJECT)) == []
    assert refused.payment_id not in router.waiting


def test_a_payment_no_channel_can_take_ends_failed():
    router = router_factory()
    accepted = payment_accepted(channel=None, method=PaymentMethod.COINS)
    out = feed(router, accepted, assessed(accepted.payment_id, RiskOutcome.APPROVE))
    (routed,) = routed_of(out)
    assert routed.channel is None and routed.reason_code == "NO_CHANNEL"
    (failed,) = [r for r in out if isinstance(r, PaymentFailed)]
    assert failed.reason_code == "NO_CHANNEL"


def test_another_routers_usage_counts_and_its_own_does_not_count_twice():
    router = router_factory()
    usage = ChannelUsage(
        event_id="u1",
        occurred_at=AT,
        channel="card_b",
        merchant_id="shop-0042",
        amount_minor=500,
        currency="CNY",
        business_date="2024-05-01",
        router="router-elsewhere",
    )
    router.apply_feedback(usage)
    router.apply_feedback(dataclasses.replace(usage, router=router.instance))
    usage_now = router.quotas.usage("2024-05-01", "card_b", "shop-0042")
    assert (usage_now.count, dict(usage_now.amounts)) == (1, {"CNY": 500})


@pytest.mark.parametrize("timed_out", [False, True])
def test_channel_results_reach_the_health_board(timed_out):
    router = router_factory()
    for number in range(10):
        router.apply_feedback(
            ChannelObservation(
                event_id=f"o{number}",
                occurred_at=utc_now(),
                channel="alipay",
                succeeded=False,
                timed_out=timed_out,
                latency_ms=900,
            )
        )
    accepted = payment_accepted(channel=None, method=PaymentMethod.ALIPAY)
    out = feed(router, accepted, assessed(accepted.payment_id, RiskOutcome.APPROVE))
    (candidate,) = routed_of(out)[0].candidates
    assert candidate.eliminated is not None, "ten failures in a row take the channel out"
    assert routed_of(out)[0].channel is None


def test_a_published_policy_is_live_for_the_next_payment():
    router = router_factory()
    text = (default_policy_text := _default_text()).replace(
        f"version = {default_policy().version}", "version = 99", 1
    )
    assert text != default_policy_text
    router.apply_feedback(
        RoutingPolicyPublished(
            event_id="p", occurred_at=AT, version=99, digest="x", text=text, published_by="ops"
        )
    )
    accepted = payment_accepted(channel=None)
    (routed,) = routed_of(
        feed(router, accepted, assessed(accepted.payment_id, RiskOutcome.APPROVE))
    )
    assert routed.policy_version == 99


def test_a_broken_policy_is_refused_and_the_live_one_stays():
    router = router_factory()
    router.apply_feedback(
        RoutingPolicyPublished(
            event_id="p",
            occurred_at=AT,
            version=5,
            digest="x",
            text="version = [",
            published_by="o",
        )
    )
    assert router.policy.version == default_policy().version


def _default_text() -> str:
    from importlib import resources

    return resources.files("streams.routing").joinpath("default.policy.toml").read_text()


def test_a_payment_cleared_too_long_ago_expires_uncharged():
    router = router_factory()
    accepted = payment_accepted(channel=None)
    out = feed(router, accepted, assessed(accepted.payment_id, RiskOutcome.APPROVE, at=AT))
    assert routed_of(out) == [], "no channel is asked"
    (failed,) = out
    assert isinstance(failed, PaymentFailed) and failed.reason_code == "EXPIRED"
    assert accepted.payment_id not in router.waiting
