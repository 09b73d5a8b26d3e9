"""The local Kafka launcher without a broker: toolchain checks, ports, config, pid safety."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from deploy.local_kafka import (
    BrokerState,
    BrokerUnavailable,
    LocalKafka,
    ToolchainMissing,
    choose_ports,
    new_cluster_id,
    port_is_free,
    render_server_properties,
    resolve_bootstrap,
)
from deploy.toolchain import (
    JarResolutionFailed,
    kafka_version,
    parse_java_major,
    require_java,
    require_maven,
    resolve_jars,
)
from paystream.cli.kafka import kafka_app
from paystream.config import PaystreamSettings

JAVA_17_OUTPUT = (
    'openjdk version "17.0.15" 2025-04-15\n'
    "OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)\n"
)


@pytest.fixture
def settings(tmp_path: Path) -> PaystreamSettings:
    return PaystreamSettings(
        home=tmp_path / "home", cache_dir=tmp_path / "cache", kafka_bootstrap=None
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def write_script(directory: Path, name: str, body: str) -> Path:
    script = directory / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def fake_java(directory: Path, version_output: str = JAVA_17_OUTPUT) -> Path:
    # PATH holds only the fake tools, so the scripts use shell builtins alone.
    return write_script(directory, "java", f"printf '%s' '{version_output}' >&2")


def spawn(*args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Right after exec the kernel briefly reports an empty command line; wait it out.
    deadline = time.monotonic() + 5
    while not Path(f"/proc/{process.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    return process


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    spawned: list[subprocess.Popen[bytes]] = []
    yield spawned
    for process in spawned:
        process.kill()
        process.wait()


def record_broker(kafka: LocalKafka, pid: int, port: int = 39092) -> BrokerState:
    state = BrokerState(
        pid=pid,
        port=port,
        controller_port=port + 1,
        bootstrap=f"127.0.0.1:{port}",
        log_file=kafka.log_file,
        started_at="2026-01-01T00:00:00+00:00",
        kafka_version=kafka.kafka_version,
    )
    kafka.state_dir.mkdir(parents=True, exist_ok=True)
    kafka.state_file.write_text(json.dumps(state.to_json()))
    return state


def impostor_broker(kafka: LocalKafka) -> list[str]:
    """A harmless process whose command line looks like our broker's."""
    code = "import time; time.sleep(60)"
    return [sys.executable, "-c", code, "kafka.Kafka", str(kafka.server_properties)]


# --- Java and Maven -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ("17.0.15", 17),
        ("1.8.0_292", 8),
        ("21", 21),
        ("21-ea", 21),
        (JAVA_17_OUTPUT, 17),
        ('java version "1.8.0_292"\nJava(TM) SE Runtime Environment', 8),
        ('Picked up JAVA_TOOL_OPTIONS: -Xss4m\nopenjdk version "21.0.2" 2024-01-16', 21),
    ],
)
def test_parse_java_major(text: str, major: int) -> None:
    assert parse_java_major(text) == major


def test_parse_java_major_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_java_major("no java here")


def test_missing_java_names_the_package(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolchainMissing) as caught:
        require_java()
    message = str(caught.value)
    assert "Java 17 or newer is required" in message
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "PAYSTREAM_KAFKA_BOOTSTRAP" in message


def test_old_java_reports_the_version_found(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    fake_java(bin_dir, 'java version "1.8.0_292"\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolchainMissing, match=r"\(found 8\)"):
        require_java()


def test_java_17_is_accepted(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    java = fake_java(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert require_java() == str(java)


def test_missing_maven_names_the_package(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolchainMissing, match="apt-get install maven"):
        require_maven()


def test_start_without_java_raises_before_touching_anything(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path, settings: PaystreamSettings
) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    kafka = LocalKafka(settings)
    with pytest.raises(ToolchainMissing, match="openjdk-17"):
        kafka.start()
    assert not kafka.server_properties.exists()
    assert not settings.cache_dir.exists()


def test_start_without_maven_and_no_cached_jars(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path, settings: PaystreamSettings
) -> None:
    fake_java(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolchainMissing, match="apt-get install maven"):
        LocalKafka(settings).start()


# --- jar resolution -------------------------------------------------------------------

# Copies a jar into -DoutputDirectory and counts its runs, like a successful Maven would.
FAKE_MVN = """
case "$1" in -v) exit 0;; esac
echo run >> "${0%/*}/mvn-runs"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) : > "${arg#-DoutputDirectory=}/kafka.jar";; esac
done
"""


def test_jars_are_resolved_once_into_the_cache(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path, tmp_path: Path
) -> None:
    write_script(bin_dir, "mvn", FAKE_MVN)
    monkeypatch.setenv("PATH", str(bin_dir))
    libs = tmp_path / "cache" / "kafka-9.9.9" / "libs"
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")

    assert resolve_jars(pom, libs) == libs
    assert resolve_jars(pom, libs) == libs

    assert [p.name for p in libs.iterdir()] == ["kafka.jar"]
    assert (bin_dir / "mvn-runs").read_text().splitlines() == ["run"]
    assert sorted(p.name for p in libs.parent.iterdir()) == ["libs"]  # no staging left


def test_failed_resolution_leaves_no_cache(
    monkeypatch: pytest.MonkeyPatch, bin_dir: Path, tmp_path: Path
) -> None:
    write_script(bin_dir, "mvn", 'case "$1" in -v) exit 0;; esac\necho "cannot resolve"; exit 1')
    monkeypatch.setenv("PATH", str(bin_dir))
    libs = tmp_path / "cache" / "kafka-9.9.9" / "libs"
    with pytest.raises(JarResolutionFailed, match="cannot resolve"):
        resolve_jars(tmp_path / "pom.xml", libs)
    assert list(libs.parent.iterdir()) == []


def test_kafka_version_comes_from_the_packaged_pom(settings: PaystreamSettings) -> None:
    kafka = LocalKafka(settings)
    assert kafka.kafka_version == "4.1.2"
    assert kafka.libs == settings.cache_dir / "kafka-4.1.2" / "libs"
    pom = "<project><properties><kafka.version>3.9.0</kafka.version></properties></project>"
    assert kafka_version(pom) == "3.9.0"


# --- ports and configuration ----------------------------------------------------------


def test_a_free_port_is_chosen_when_9092_is_taken() -> None:
    holder = None
    if port_is_free(9092):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", 9092))
        holder.listen()
    try:
        port, controller_port = choose_ports()
        assert port != 9092
        assert controller_port != port
        assert port_is_free(port)
        assert port_is_free(controller_port)
    finally:
        if holder is not None:
            holder.close()


def test_recorded_ports_are_reused_when_free() -> None:
    recorded = choose_ports()
    assert choose_ports(recorded) == recorded


def test_recorded_ports_are_replaced_when_taken() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        port, controller_port = choose_ports((taken, taken + 1))
    assert taken not in (port, controller_port)


def test_server_properties_are_rendered(tmp_path: Path) -> None:
    text = render_server_properties(39092, 39093, tmp_path / "data")
    assert "listeners=PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093" in text
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:39092" in text
    assert "controller.quorum.bootstrap.servers=127.0.0.1:39093" in text
    assert f"log.dirs={tmp_path / 'data'}" in text
    assert "auto.create.topics.enable=false" in text
    assert "log.retention.hours=-1" in text
    assert "$" not in text


def test_no_cluster_id_reads_as_an_option() -> None:
    """The storage tool takes an argument starting with "-" for an option and refuses to format;
    with one id in 64 starting so, 2,000 ids would include about 31 of them."""
    assert not any(new_cluster_id().startswith("-") for _ in range(2_000))


def test_cluster_id_is_22_urlsafe_characters() -> None:
    ids = {new_cluster_id() for _ in range(20)}
    assert len(ids) == 20
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_broker_state_round_trips_through_json(settings: PaystreamSettings) -> None:
    kafka = LocalKafka(settings)
    state = record_broker(kafka, pid=12345)
    assert BrokerState.from_json(json.loads(kafka.state_file.read_text())) == state


# --- which process is ours ------------------------------------------------------------


def test_stop_refuses_to_kill_a_process_that_is_not_our_broker(
    settings: PaystreamSettings, processes: list[subprocess.Popen[bytes]]
) -> None:
    stranger = spawn("sleep", "60")
    processes.append(stranger)
    kafka = LocalKafka(settings)
    record_broker(kafka, stranger.pid)
    recorded = kafka.state_file.read_text()

    assert kafka.status() is None
    assert kafka.stop(timeout=1) is False
    assert stranger.poll() is None  # still running
    assert kafka.state_file.read_text() == recorded


def test_stop_ends_our_broker_and_keeps_its_ports(
    settings: PaystreamSettings, processes: list[subprocess.Popen[bytes]]
) -> None:
    kafka = LocalKafka(settings)
    broker = spawn(*impostor_broker(kafka))
    processes.append(broker)
    state = record_broker(kafka, broker.pid)

    assert kafka.status() == state
    assert kafka.stop(timeout=10) is True

    assert broker.wait(timeout=5) is not None
    assert kafka.status() is None
    record = json.loads(kafka.state_file.read_text())
    assert record["pid"] is None
    assert (record["port"], record["controller_port"]) == (state.port, state.controller_port)
    assert kafka.stop() is False


def test_stop_without_any_state(settings: PaystreamSettings) -> None:
    kafka = LocalKafka(settings)
    assert kafka.status() is None
    assert kafka.stop() is False


# --- resolve_bootstrap ----------------------------------------------------------------


def test_configured_bootstrap_wins(
    settings: PaystreamSettings, processes: list[subprocess.Popen[bytes]]
) -> None:
    kafka = LocalKafka(settings)
    processes.append(spawn(*impostor_broker(kafka)))
    record_broker(kafka, processes[0].pid)
    configured = settings.model_copy(update={"kafka_bootstrap": "kafka-1:9092,kafka-2:9092"})
    assert resolve_bootstrap(configured) == "kafka-1:9092,kafka-2:9092"


def test_running_local_broker_is_next(
    settings: PaystreamSettings, processes: list[subprocess.Popen[bytes]]
) -> None:
    kafka = LocalKafka(settings)
    processes.append(spawn(*impostor_broker(kafka)))
    record_broker(kafka, processes[0].pid, port=39555)
    assert resolve_bootstrap(settings) == "127.0.0.1:39555"


def test_no_broker_at_all(settings: PaystreamSettings) -> None:
    with pytest.raises(BrokerUnavailable, match="paystream kafka start"):
        resolve_bootstrap(settings)


# --- CLI ------------------------------------------------------------------------------


def output(result: Result) -> str:
    """What the user saw, with the console's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: PaystreamSettings) -> None:
    monkeypatch.setenv("PAYSTREAM_HOME", str(settings.home))
    monkeypatch.setenv("PAYSTREAM_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.delenv("PAYSTREAM_KAFKA_BOOTSTRAP", raising=False)


@pytest.mark.usefixtures("cli_env")
def test_cli_status_exits_1_when_not_running() -> None:
    result = CliRunner().invoke(kafka_app, ["status"])
    assert result.exit_code == 1
    assert "not running" in output(result)


@pytest.mark.usefixtures("cli_env")
def test_cli_stop_when_nothing_runs() -> None:
    result = CliRunner().invoke(kafka_app, ["stop"])
    assert result.exit_code == 0
    assert "No local broker of ours is running" in output(result)


@pytest.mark.usefixtures("cli_env")
def test_cli_with_an_external_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSTREAM_KAFKA_BOOTSTRAP", "kafka-1:9092")
    for command in ("start", "status"):
        result = CliRunner().invoke(kafka_app, [command])
        assert result.exit_code == 0
        assert "kafka-1:9092" in output(result)
        assert "not used" in output(result)


@pytest.mark.usefixtures("cli_env")
def test_cli_start_without_java_exits_2(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    result = CliRunner().invoke(kafka_app, ["start"])
    assert result.exit_code == 2
    assert "apt-get install openjdk-17-jre-headless" in output(result)
    assert "Traceback" not in output(result)
