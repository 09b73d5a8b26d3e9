"""The routing bench's payments: what the router would read on the log, and all routable."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from events.records import PaymentAccepted, PaymentMethod
from events.risk_records import RiskAssessed, RiskOutcome
from events.routing_records import PaymentRouted
from events.schema_store import ManifestSchemas
from events.topics import TopicCatalogue
from events.wire import EventCodec
from paystream.bench.route import approved_payments, decision_rates
from streams.engine.kafka import Delivered
from streams.routing.processor import Router

CODEC = EventCodec(ManifestSchemas())


def test_payments_are_approved_cny_and_keyed_by_payment_id() -> None:
    payments = approved_payments(120, seed=5)
    assert len(payments) == 120
    methods, merchants = set(), set()
    for key, accepted_bytes, assessed_bytes in payments:
        accepted = CODEC.decode_as(accepted_bytes, [PaymentAccepted])
        assessed = CODEC.decode_as(assessed_bytes, [RiskAssessed])
        assert accepted.payment_id == assessed.payment_id == key.decode()
        assert assessed.outcome is RiskOutcome.APPROVE
        assert accepted.currency == "CNY"
        methods.add(accepted.method)
        merchants.add(accepted.merchant_id)
    assert methods == {PaymentMethod.ALIPAY, PaymentMethod.WECHAT_PAY, PaymentMethod.CARD}
    assert len(merchants) > 50
    # Payments of different runs never meet: each run's are new to the router.
    assert not {key for key, _, _ in payments} & {key for key, _, _ in approved_payments(120, 6)}


def test_the_router_routes_every_payment_to_a_channel() -> None:
    router = Router(
        TopicCatalogue("unit"), CODEC, "127.0.0.1:1", ZoneInfo("Asia/Shanghai"), lambda m, e: None
    )
    router.waiting.bind(0)
    routed = []
    for offset, (key, accepted, assessed) in enumerate(approved_payments(60, seed=8)):
        for value in (accepted, assessed):
            message = Delivered("unit.payments.events", 0, offset, 0, key, value)
            routed += [out.record for out in router.on_logged(message, CODEC.decode(value))]
    decisions = [record for record in routed if isinstance(record, PaymentRouted)]
    assert len(decisions) == 60
    assert all(decision.channel is not None for decision in decisions)


def test_decision_rates_report_both_figures() -> None:
    bare, explained = decision_rates(500)
    assert (bare.messages, explained.messages) == (500, 500)
    assert bare.per_second > 0 and explained.per_second > 0
