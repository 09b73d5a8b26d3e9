"""Shared fixtures: one real Kafka broker for the session, fresh namespaces and stacks per test.

When the broker cannot start the session fails: an end-to-end test is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from deploy.local_kafka import LocalKafka
from events.admin import delete_topics, ensure_topics
from events.topics import TopicCatalogue
from paystream.config import PaystreamSettings
from paystream.stack import ChildProcess, StackEnvironment

T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from sync code, even inside an async test's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real broker: PAYSTREAM_KAFKA_BOOTSTRAP, or one started here."""
    external = os.environ.get("PAYSTREAM_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    home = Path(tempfile.mkdtemp(prefix="paystream-test-broker-"))
    broker = LocalKafka(PaystreamSettings(home=home))
    # Any failure here (no Java, no Maven, broker crash) errors every test that needs it.
    state = broker.start(timeout=120)
    try:
        yield state.bootstrap
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def catalogue_factory(kafka_bootstrap: str) -> Iterator[Callable[[], TopicCatalogue]]:
    """Makes topic catalogues in fresh namespaces, created on the broker and deleted after."""
    made: list[TopicCatalogue] = []

    def make() -> TopicCatalogue:
        catalogue = TopicCatalogue(f"t{uuid.uuid4().hex[:10]}")
        run_blocking(ensure_topics(kafka_bootstrap, catalogue))
        made.append(catalogue)
        return catalogue

    yield make
    names = [spec.name for catalogue in made for spec in catalogue.all()]
    run_blocking(delete_topics(kafka_bootstrap, names))


class Stack:
    """A namespace's worker and projector as real child processes, with their database."""

    def __init__(self, environment: StackEnvironment, logs: Path) -> None:
        self.environment = environment
        self.catalogue = TopicCatalogue(environment.namespace)
        self._logs = logs
        self.processes: dict[str, ChildProcess] = {}

    def start(self, role: str, name: str | None = None) -> ChildProcess:
        """Start (or restart) ``paystream worker``, ``dispatcher`` or ``project`` as ``name``."""
        name = name or role
        process = ChildProcess(role, self.environment, self._logs / f"{name}.log")
        process.start()
        self.processes[name] = process
        return process

    def logs(self) -> str:
        """Every process's log tail, for failure messages."""
        return "\n".join(f"--- {r} ---\n{p.log_tail()}" for r, p in self.processes.items())

    def stop(self) -> None:
        """Stop every process started."""
        for process in self.processes.values():
            process.stop()


@pytest.fixture
def stack_factory(
    kafka_bootstrap: str, catalogue_factory: Callable[[], TopicCatalogue], tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    """Makes stacks (namespace, SQLite read model, worker/projector processes), stopped after."""
    stacks: list[Stack] = []

    def make(settings: Mapping[str, str] | None = None) -> Stack:
        catalogue = catalogue_factory()
        database = tmp_path / f"{catalogue.namespace}.db"
        environment = StackEnvironment(
            kafka_bootstrap, catalogue.namespace, f"sqlite:///{database}", dict(settings or {})
        )
        stack = Stack(environment, tmp_path / catalogue.namespace)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()
