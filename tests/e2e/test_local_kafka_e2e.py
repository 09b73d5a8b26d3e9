"""The local Kafka launcher against a real broker: start, reuse, restart, stop, CLI.

These tests need Java 17+ and Maven; when the broker cannot start they fail, never skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner, Result

from deploy.local_kafka import LocalKafka, resolve_bootstrap
from events.topics import TopicCatalogue
from paystream.cli.kafka import kafka_app
from paystream.config import PaystreamSettings

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(tmp_path: Path) -> PaystreamSettings:
    # cache_dir keeps its default so the resolved jars are shared between runs.
    return PaystreamSettings(home=tmp_path / "home", kafka_bootstrap=None)


@pytest.fixture
def kafka(settings: PaystreamSettings) -> Iterator[LocalKafka]:
    launcher = LocalKafka(settings)
    yield launcher
    launcher.stop()


async def describe_cluster(bootstrap: str) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return dict(await admin.describe_cluster())
    finally:
        await admin.close()


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cluster_id(kafka: LocalKafka) -> str:
    lines = (kafka.data_dir / "meta.properties").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith("cluster.id="))


def test_start_is_idempotent_and_stop_ends_the_broker(
    kafka: LocalKafka, settings: PaystreamSettings
) -> None:
    state = kafka.start()

    assert state.bootstrap == f"127.0.0.1:{state.port}"
    assert state.kafka_version == "4.1.2"
    assert kafka.status() == state
    assert LocalKafka(settings).status() == state  # found again from broker.json alone
    assert resolve_bootstrap(settings) == state.bootstrap

    cluster = asyncio.run(describe_cluster(state.bootstrap))
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", state.port)]
    assert cluster["cluster_id"] == cluster_id(kafka)

    again = kafka.start()
    assert again == state

    assert kafka.stop() is True
    assert kafka.status() is None
    assert not process_exists(state.pid)
    assert kafka.stop() is False


def test_restart_keeps_ports_cluster_and_topics(kafka: LocalKafka) -> None:
    first = kafka.start()
    first_cluster = cluster_id(kafka)
    asyncio.run(create_topic(first.bootstrap, "e2e.survives-restart"))
    assert kafka.stop() is True

    second = kafka.start()

    assert second.pid != first.pid
    assert (second.port, second.controller_port) == (first.port, first.controller_port)
    assert cluster_id(kafka) == first_cluster
    assert "e2e.survives-restart" in asyncio.run(list_topics(second.bootstrap))
    assert (kafka.log_file.with_suffix(".log.1")).exists()  # the first run's log is kept


def output(result: Result) -> str:
    return " ".join(result.output.split())


def test_cli_start_status_stop(
    monkeypatch: pytest.MonkeyPatch, settings: PaystreamSettings
) -> None:
    monkeypatch.setenv("PAYSTREAM_HOME", str(settings.home))
    monkeypatch.setenv("PAYSTREAM_NAMESPACE", "e2e-cli")
    monkeypatch.delenv("PAYSTREAM_KAFKA_BOOTSTRAP", raising=False)
    runner = CliRunner()
    try:
        started = runner.invoke(kafka_app, ["start"])
        assert started.exit_code == 0, started.output
        state = LocalKafka(settings).status()
        assert state is not None
        assert state.bootstrap in output(started)
        assert f"pid {state.pid}" in output(started)
        expected = [spec.name for spec in TopicCatalogue("e2e-cli").all()]
        assert all(name in output(started) for name in expected)
        assert set(expected) <= set(asyncio.run(list_topics(state.bootstrap)))

        restarted = runner.invoke(kafka_app, ["start"])
        assert restarted.exit_code == 0, restarted.output
        assert "all present already" in output(restarted)

        status = runner.invoke(kafka_app, ["status"])
        assert status.exit_code == 0
        assert state.bootstrap in output(status)

        stopped = runner.invoke(kafka_app, ["stop"])
        assert stopped.exit_code == 0
        assert f"pid {state.pid}" in output(stopped)
        assert runner.invoke(kafka_app, ["status"]).exit_code == 1
    finally:
        LocalKafka(settings).stop()
