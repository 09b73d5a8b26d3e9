"""The topic catalogue and the generated topic reference."""

from __future__ import annotations

import pytest

from events.records import (
    CommandDeduplicated,
    PaymentAccepted,
    PaymentRejected,
    RequestPayment,
)
from events.topic_reference import END, START, replace_reference, topic_reference
from events.topics import TopicCatalogue


@pytest.mark.parametrize("namespace", ["paystream", "t5c3bc8412b", "demo.eu-1"])
def test_namespace_prefixes_every_topic_name(namespace):
    catalogue = TopicCatalogue(namespace)
    specs = catalogue.all()
    assert len(specs) == 3
    for spec in specs:
        assert spec.name.startswith(f"{namespace}."), spec.name


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


@pytest.mark.parametrize("topic", ["commands", "events", "dead_letters"])
def test_no_topic_allows_unclean_leader_election(topic):
    spec = getattr(TopicCatalogue("paystream"), topic)
    assert spec.config()["unclean.leader.election.enable"] == "false"


def test_topics_carry_the_records_their_consumers_expect():
    catalogue = TopicCatalogue("paystream")
    assert catalogue.commands.records == (RequestPayment,)
    assert set(catalogue.events.records) == {PaymentAccepted, PaymentRejected, CommandDeduplicated}


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
