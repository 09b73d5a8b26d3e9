"""A single-node Apache Kafka broker (KRaft) on 127.0.0.1 for local runs and tests.

The broker runs detached from the process that started it. Its state lives in
``settings.home / "kafka"``: the rendered configuration, the data, ``broker.log`` and
``broker.json`` (pid and ports), so any later process can find, reuse or stop it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from deploy.toolchain import JarResolutionFailed as JarResolutionFailed  # re-export
from deploy.toolchain import LocalKafkaError, kafka_version, require_java, resolve_jars
from deploy.toolchain import ToolchainMissing as ToolchainMissing  # re-export
from paystream.config import PaystreamSettings

DEFAULT_PORT = 9092
HOST = "127.0.0.1"
_LOG_TAIL_LINES = 30
_PROBE_INTERVAL_S = 0.5
_PROBE_TIMEOUT_S = 5.0
_KILL_WAIT_S = 10.0

# Brokers started by this process: held so they are reaped, not reported as leaked handles.
_children: dict[int, subprocess.Popen[bytes]] = {}


class BrokerUnavailable(LocalKafkaError):
    """No broker answers: none is running, or it failed to start."""


@dataclass(frozen=True)
class BrokerState:
    """A local broker started by this launcher, as recorded in ``broker.json``."""

    pid: int
    port: int
    controller_port: int
    bootstrap: str
    log_file: Path
    started_at: str
    kafka_version: str

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready form written to ``broker.json``."""
        return {**asdict(self), "log_file": str(self.log_file)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BrokerState:
        """The state read from ``broker.json``; KeyError/TypeError when it records no broker."""
        fields = {name: data[name] for name in cls.__dataclass_fields__}
        return cls(**{**fields, "pid": int(fields["pid"]), "log_file": Path(fields["log_file"])})


def _packaged(name: str) -> Traversable:
    return resources.files("deploy").joinpath("kafka", name)


def render_server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """The broker's ``server.properties`` for these ports and data directory."""
    template = Template(_packaged("server.properties").read_text(encoding="utf-8"))
    return template.substitute(port=port, controller_port=controller_port, data_dir=data_dir)


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The JVM binds with SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the operating system reports free on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def choose_ports(recorded: tuple[int, int] | None = None) -> tuple[int, int]:
    """(broker port, controller port): the recorded pair when free, else 9092 or a free port."""
    if recorded and recorded[0] != recorded[1] and all(map(port_is_free, recorded)):
        return recorded
    port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    return port, controller_port


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Never one starting with "-", as Kafka's own ids never do: the storage tool would take it
    for an option (one format in 64 failed that way).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _command_line(pid: int) -> list[str]:
    """The arguments of ``pid``; empty when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] != "Z":
        return True
    # A broker started by this very process stays a zombie until waited for.
    child = _children.pop(pid, None)
    if child is not None:
        child.wait()
    return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _answers(bootstrap: str) -> bool:
    """Whether the broker at ``bootstrap`` answers a metadata request."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(_PROBE_TIMEOUT_S * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), _PROBE_TIMEOUT_S)
        await asyncio.wait_for(admin.list_topics(), _PROBE_TIMEOUT_S)
        return True
    except Exception:  # any failure here only means "not ready yet"
        return False
    finally:
        await admin.close()


async def _poll_ready(bootstrap: str, deadline: float, died: Callable[[], bool]) -> bool:
    """True once the broker answers; False when it died or the deadline passed."""
    while not died():
        if await _answers(bootstrap):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_PROBE_INTERVAL_S)
    return False


def _run_in_own_loop(coroutine: Coroutine[Any, Any, bool]) -> bool:
    """Run ``coroutine`` on a private event loop, so callers inside a loop can use it too."""
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(asyncio.run(coroutine)), name="kafka-probe", daemon=True
    )
    # A starting broker refuses connections; the client logs each refusal as an error.
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        thread.start()
        thread.join()
    finally:
        client_log.setLevel(level)
    return bool(result and result[0])


class LocalKafka:
    """Start, find and stop the single-node broker kept in ``settings.home / "kafka"``."""

    def __init__(self, settings: PaystreamSettings) -> None:
        self.settings = settings
        self.state_dir = settings.home / "kafka"
        self.data_dir = self.state_dir / "data"
        self.server_properties = self.state_dir / "server.properties"
        self.log4j_properties = self.state_dir / "log4j2.properties"
        self.state_file = self.state_dir / "broker.json"
        self.log_file = self.state_dir / "broker.log"
        self.kafka_version = kafka_version(_packaged("pom.xml").read_text(encoding="utf-8"))
        self.libs = settings.cache_dir / f"kafka-{self.kafka_version}" / "libs"

    def start(self, timeout: float = 90.0) -> BrokerState:
        """Start the broker unless ours already runs; returns once it answers metadata."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self.status()
            if running is not None:
                return self._await_running(running, timeout)
            java = require_java()
            self._resolve_libs()
            port, controller_port = choose_ports(self._recorded_ports())
            self._write_config(port, controller_port)
            self._format_storage(java)
            return self._launch(java, port, controller_port, timeout)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our broker (SIGTERM, then SIGKILL after ``timeout``); False if none runs."""
        state = self.status()
        if state is None:
            return False
        with self._lock():
            if not self._owns(state.pid):  # it ended while we waited for the lock
                return False
            _terminate(state.pid, timeout)
            self._clear_pid()
        return True

    def status(self) -> BrokerState | None:
        """The recorded broker if it is alive and is ours, else None."""
        try:
            state = BrokerState.from_json(self._read_record())
        except (KeyError, TypeError, ValueError):
            return None
        return state if self._owns(state.pid) else None

    def _owns(self, pid: int) -> bool:
        # A recycled pid must never be mistaken for our broker: match its command line too.
        args = _command_line(pid)
        return "kafka.Kafka" in args and str(self.server_properties) in args

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise starts and stops of this state directory across processes."""
        with (self.state_dir / "lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _await_running(self, state: BrokerState, timeout: float) -> BrokerState:
        deadline = time.monotonic() + timeout
        probe = _poll_ready(state.bootstrap, deadline, lambda: not self._owns(state.pid))
        if _run_in_own_loop(probe):
            return state
        raise BrokerUnavailable(
            f"The local broker (pid {state.pid}) runs but does not answer on {state.bootstrap}; "
            f"see {state.log_file} or run `paystream kafka stop`."
        )

    def _resolve_libs(self) -> None:
        with resources.as_file(_packaged("pom.xml")) as pom:
            resolve_jars(pom, self.libs)

    def _write_config(self, port: int, controller_port: int) -> None:
        properties = render_server_properties(port, controller_port, self.data_dir)
        self.server_properties.write_text(properties, encoding="utf-8")
        log4j = _packaged("log4j2.properties").read_text(encoding="utf-8")
        self.log4j_properties.write_text(log4j, encoding="utf-8")

    def _java_command(self, java: str, *args: str, jvm: Sequence[str] = ()) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={self.log4j_properties}"
        return [java, *jvm, log4j, "-cp", f"{self.libs}/*", *args]

    def _format_storage(self, java: str) -> None:
        """Format the KRaft storage once; a formatted directory keeps its cluster id."""
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = self._java_command(
            java, "kafka.tools.StorageTool", "format", "--standalone",
            "-t", new_cluster_id(), "-c", str(self.server_properties),
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise BrokerUnavailable(
                f"Formatting the broker storage in {self.data_dir} failed "
                f"(exit {result.returncode}):\n{output}"
            )

    def _launch(self, java: str, port: int, controller_port: int, timeout: float) -> BrokerState:
        heap = self.settings.broker_heap
        jvm = [f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC"]
        command = self._java_command(java, "kafka.Kafka", str(self.server_properties), jvm=jvm)
        self._rotate_log()
        with self.log_file.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # outlives the CLI and ignores its Ctrl+C
            )
        _children[process.pid] = process
        state = BrokerState(
            pid=process.pid,
            port=port,
            controller_port=controller_port,
            bootstrap=f"{HOST}:{port}",
            log_file=self.log_file,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            kafka_version=self.kafka_version,
        )
        self._write_record(state.to_json())
        self._wait_started(process, state, timeout)
        return state

    def _wait_started(
        self, process: subprocess.Popen[bytes], state: BrokerState, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        try:
            ready = _run_in_own_loop(
                _poll_ready(state.bootstrap, deadline, lambda: process.poll() is not None)
            )
        except BaseException:  # e.g. Ctrl+C: leave no half-started broker behind
            self._abandon(process)
            raise
        if ready:
            return
        code = process.poll()
        self._abandon(process)
        if code is None:
            reason = f"did not answer within {timeout:.0f} s and was stopped"
        else:
            reason = f"exited with code {code}"
        raise BrokerUnavailable(
            f"The local Kafka broker {reason}. Last lines of {self.log_file}:\n"
            f"{_tail(self.log_file)}"
        )

    def _abandon(self, process: subprocess.Popen[bytes]) -> None:
        _terminate(process.pid, _KILL_WAIT_S)
        _children.pop(process.pid, None)
        process.wait()
        self._clear_pid()

    def _rotate_log(self) -> None:
        # Keep the previous run's log: it is what explains a crash that prompted a restart.
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_suffix(".log.1"))

    def _read_record(self) -> dict[str, Any]:
        try:
            record = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _write_record(self, record: dict[str, Any]) -> None:
        staging = self.state_file.with_suffix(".json.tmp")
        staging.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        staging.replace(self.state_file)

    def _recorded_ports(self) -> tuple[int, int] | None:
        record = self._read_record()
        port, controller_port = record.get("port"), record.get("controller_port")
        if isinstance(port, int) and isinstance(controller_port, int):
            return port, controller_port
        return None

    def _clear_pid(self) -> None:
        """Forget the pid but keep the ports, so the next start reuses them."""
        record = self._read_record()
        if record:
            self._write_record({**record, "pid": None})


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid`` (a graceful broker shutdown), then SIGKILL if it outlives ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, _KILL_WAIT_S)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _gone_within(pid, wait):
            return


def _gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def resolve_bootstrap(settings: PaystreamSettings) -> str:
    """The configured cluster, else the running local broker; BrokerUnavailable if neither."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    state = LocalKafka(settings).status()
    if state is not None:
        return state.bootstrap
    raise BrokerUnavailable(
        "No Kafka broker: run `paystream kafka start` or set PAYSTREAM_KAFKA_BOOTSTRAP."
    )
