"""The topic catalogue and the generated topic reference."""

from __future__ import annotations

import pytest

from events.feature_tables import FeatureRequestRows, FeatureSnapshotRows
from events.payout_records import (
    PayoutCompleted,
    PayoutFailed,
    PayoutRejected,
    PayoutRouted,
    RequestPayout,
)
from events.record_types import RECORD_TYPES
from events.records import (
    ChargebackReceived,
    CommandDeduplicated,
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
from events.topic_reference import END, START, replace_reference, topic_reference
from events.topics import TopicCatalogue, TopicSpec


@pytest.mark.parametrize("namespace", ["paystream", "t5c3bc8412b", "demo.eu-1"])
def test_namespace_prefixes_every_topic_name(namespace):
    catalogue = TopicCatalogue(namespace)
    specs = catalogue.all()
    assert specs, "the catalogue lists its topics"
    for spec in specs:
        assert spec.name.startswith(f"{namespace}."), spec.name


def test_all_lists_every_topic_the_catalogue_defines():
    """A topic missing from all() would never be created nor documented."""
    catalogue = TopicCatalogue("paystream")
    defined = {value.name for value in vars(catalogue).values() if isinstance(value, TopicSpec)}
    assert {spec.name for spec in catalogue.all()} == defined


def test_two_namespaces_share_no_topic():
    first = {spec.name for spec in TopicCatalogue("alpha").all()}
    second = {spec.name for spec in TopicCatalogue("beta").all()}
    assert first.isdisjoint(second)


def test_topic_names_within_a_namespace_are_distinct():
    names = [spec.name for spec in TopicCatalogue("paystream").all()]
    assert len(set(names)) == len(names)


def test_partitions_setting_applies_to_commands_and_events():
    catalogue = TopicCatalogue("paystream", partitions=12)
    assert catalogue.commands.partitions == 12
    assert catalogue.events.partitions == 12


def test_events_log_keeps_data_forever():
    config = TopicCatalogue("paystream").events.config()
    assert config["retention.ms"] == "-1"
    assert config["cleanup.policy"] == "delete"  # compaction would drop a payment's history


def test_commands_topic_expires_its_data():
    retention_ms = int(TopicCatalogue("paystream").commands.config()["retention.ms"])
    assert retention_ms > 0


def test_dead_letters_are_never_expired():
    assert TopicCatalogue("paystream").dead_letters.config()["retention.ms"] == "-1"


def test_no_topic_allows_unclean_leader_election():
    for spec in TopicCatalogue("paystream").all():
        assert spec.config()["unclean.leader.election.enable"] == "false", spec.name


@pytest.mark.parametrize("partitions", [1, 4, 12])
def test_topics_keyed_by_payment_id_are_co_partitioned(partitions):
    """The payment log, its feature snapshots and its review commands are all keyed by payment
    id: with equal partition counts one worker sees a payment's whole story in order."""
    catalogue = TopicCatalogue("paystream", partitions=partitions)
    keyed_by_payment = [catalogue.events, catalogue.risk_snapshots, catalogue.reviews]
    assert {spec.partitions for spec in keyed_by_payment} == {partitions}
    for spec in keyed_by_payment:
        assert spec.key.startswith("payment_id"), spec.name


@pytest.mark.parametrize("topic", ["events", "merchants", "rulesets", "alerts"])
def test_facts_about_payments_merchants_and_rules_are_kept_forever(topic):
    spec = getattr(TopicCatalogue("paystream"), topic)
    config = spec.config()
    assert config["retention.ms"] == "-1"
    # Compaction would keep only the newest record per key: a merchant's or a rule set's
    # history (every review, every published version) must stay replayable.
    assert config["cleanup.policy"] == "delete"


@pytest.mark.parametrize("topic", ["risk_features", "risk_snapshots", "risk_outcomes"])
def test_internal_risk_topics_expire(topic):
    assert int(getattr(TopicCatalogue("paystream"), topic).config()["retention.ms"]) > 0


def test_only_records_no_payment_waits_for_may_linger():
    """A lingering topic on a payment's path would add the linger to every decision; lingering
    intake keys or cases would let a command replayed after a crash fan out twice."""
    catalogue = TopicCatalogue("paystream")
    on_the_path = [
        catalogue.commands,
        catalogue.events,
        catalogue.risk_features,
        catalogue.risk_snapshots,
        catalogue.reviews,
        catalogue.dead_letters,
        catalogue.intake_keys,
        catalogue.risk_cases,
    ]
    unhurried = set(catalogue.unhurried())
    assert unhurried.isdisjoint(spec.name for spec in on_the_path)
    assert {catalogue.risk_feature_state.name, catalogue.risk_health.name} <= unhurried
    assert catalogue.risk_outcomes.name in unhurried


def test_rule_sets_are_one_ordered_partition():
    """Every worker must switch rule-set versions in the order they were published."""
    assert TopicCatalogue("paystream", partitions=12).rulesets.partitions == 1


def test_topics_carry_the_records_their_consumers_expect():
    catalogue = TopicCatalogue("paystream")
    assert catalogue.commands.records == (RequestPayment,)
    assert set(catalogue.events.records) == {
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
    }
    assert set(catalogue.merchants.records) == {
        MerchantApplied,
        MerchantReviewed,
        MerchantLimitsOverridden,
        MerchantRatingChanged,
    }
    assert catalogue.rulesets.records == (RuleSetPublished,)
    assert catalogue.reviews.records == (ReviewDecision,)
    assert set(catalogue.risk_snapshots.records) == {
        FeatureSnapshotRows,
        FeatureSnapshotBatch,
        FeatureSnapshot,
    }
    assert set(catalogue.risk_features.records) == {
        FeatureRequestRows,
        FeatureRequestBatch,
        FeatureRequest,
        FeatureRelease,
    }
    assert set(catalogue.risk_outcomes.records) == {MerchantOutcomeBatch, MerchantOutcome}
    assert catalogue.routing_policies.records == (RoutingPolicyPublished,)
    assert catalogue.refund_commands.records == (RequestRefund,)
    assert catalogue.payout_commands.records == (RequestPayout,)
    assert set(catalogue.payout_events.records) == {
        PayoutRouted,
        PayoutRejected,
        PayoutCompleted,
        PayoutFailed,
    }
    assert set(catalogue.routing_feedback.records) == {ChannelObservation, ChannelUsage}


def test_every_record_type_travels_on_some_topic():
    carried = {record for spec in TopicCatalogue("paystream").all() for record in spec.records}
    assert {record.subject for record in carried} == set(RECORD_TYPES)


def test_topic_reference_names_the_namespaced_topics():
    reference = topic_reference("acme")
    assert START not in reference and END not in reference, "replace_reference adds the markers"
    for spec in TopicCatalogue("acme").all():
        assert f"`{spec.name}`" in reference


DOCUMENT = f"# Title\n\nIntro text.\n\n{START}\nold reference\n{END}\n\n## After\nOutro.\n"


def test_replace_reference_replaces_only_the_text_between_the_markers():
    reference = topic_reference()
    updated = replace_reference(DOCUMENT, reference)
    assert updated.startswith("# Title\n\nIntro text.\n\n")
    assert updated.endswith("\n\n## After\nOutro.\n")
    assert "old reference" not in updated
    assert reference in updated
    assert updated.count(START) == 1
    assert updated.count(END) == 1


def test_replace_reference_is_idempotent():
    reference = topic_reference()
    once = replace_reference(DOCUMENT, reference)
    assert replace_reference(once, reference) == once


def test_replace_reference_picks_up_a_changed_reference():
    old = replace_reference(DOCUMENT, topic_reference("paystream"))
    new = replace_reference(old, topic_reference("acme"))
    assert "`acme.payments.events`" in new
    assert "`paystream.payments.events`" not in new
    assert new.endswith("\n\n## After\nOutro.\n")


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("# Title\nno markers at all\n", id="no-markers"),
        pytest.param(f"# Title\n{END}\n", id="end-only"),
        pytest.param(f"# Title\n{START}\nreference never closed\n", id="start-only"),
        pytest.param(f"# Title\n{END}\nbackwards\n{START}\n", id="end-before-start"),
    ],
)
def test_replace_reference_refuses_a_document_without_both_markers(document):
    with pytest.raises(ValueError, match="marker"):
        replace_reference(document, topic_reference())
