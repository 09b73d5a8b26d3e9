"""The Java and Maven the local Kafka broker needs, and the broker's jars resolved by Maven."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

MIN_JAVA = 17
_EXTERNAL_HINT = "or set PAYSTREAM_KAFKA_BOOTSTRAP to use an existing cluster."
# A first resolution downloads ~60 jars; a stuck network must not hang `start` forever.
_MAVEN_TIMEOUT_S = 900.0


class LocalKafkaError(RuntimeError):
    """The local Kafka broker cannot be provided; the message says why and what to do."""


class ToolchainMissing(LocalKafkaError):
    """Java or Maven is missing or too old; the message says what to install."""


class JarResolutionFailed(LocalKafkaError):
    """Maven ran but could not resolve the broker's jars."""


def parse_java_major(text: str) -> int:
    """The major version in ``java -version`` output or a bare version ("1.8.0_292" is 8)."""
    quoted = re.search(r'version "([^"]+)"', text)
    version = quoted.group(1) if quoted else text.strip()
    match = re.match(r"(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise ValueError(f"not a Java version: {text!r}")
    major = int(match.group(1))
    # Java 8 and older call themselves 1.x.
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def require_java() -> str:
    """The path of a Java 17+ ``java`` on PATH; raises ToolchainMissing otherwise."""
    java = shutil.which("java")
    if java is None:
        raise ToolchainMissing(_java_message("none found on PATH"))
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    try:
        major = parse_java_major(result.stderr)
    except ValueError:
        raise ToolchainMissing(_java_message(f"`{java} -version` failed")) from None
    if major < MIN_JAVA:
        raise ToolchainMissing(_java_message(f"found {major}"))
    return java


def _java_message(found: str) -> str:
    return (
        f"Java {MIN_JAVA} or newer is required to run the local Kafka broker ({found}). "
        f"Install it, e.g. `apt-get install openjdk-17-jre-headless`, {_EXTERNAL_HINT}"
    )


def require_maven() -> str:
    """The path of a working ``mvn`` on PATH; raises ToolchainMissing otherwise."""
    mvn = shutil.which("mvn")
    if mvn is not None and _runs([mvn, "-v"]):
        return mvn
    found = "none found on PATH" if mvn is None else f"`{mvn} -v` failed"
    raise ToolchainMissing(
        f"Maven is required to download the local Kafka broker's jars ({found}). "
        f"Install it, e.g. `apt-get install maven`, {_EXTERNAL_HINT}"
    )


def _runs(command: list[str]) -> bool:
    result = subprocess.run(command, capture_output=True, timeout=120, check=False)
    return result.returncode == 0


def kafka_version(pom_text: str) -> str:
    """The ``<kafka.version>`` property of the broker's pom."""
    # Any namespace: a pom may or may not declare the usual POM namespace.
    node = ET.fromstring(pom_text).find("{*}properties/{*}kafka.version")
    if node is None or not (node.text or "").strip():
        raise ValueError("the pom has no <kafka.version> property")
    return (node.text or "").strip()


def resolve_jars(pom: Path, libs: Path) -> Path:
    """Copy the pom's runtime jars into ``libs`` unless already there; returns ``libs``.

    Maven writes into a temporary sibling that is renamed into place at the end, so an
    interrupted download is never mistaken for a complete one.
    """
    if libs.is_dir():
        return libs
    mvn = require_maven()
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{libs.name}-", dir=libs.parent))
    try:
        _copy_dependencies(mvn, pom, staging)
        try:
            staging.rename(libs)
        except OSError:
            if not libs.is_dir():  # a concurrent start that won the race is fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def _copy_dependencies(mvn: str, pom: Path, target: Path) -> None:
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={target}",
        "-DincludeScope=runtime",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise JarResolutionFailed(
            f"Maven did not resolve the Kafka jars within {_MAVEN_TIMEOUT_S:.0f} s."
        ) from None
    if result.returncode != 0 or not any(target.glob("*.jar")):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise JarResolutionFailed(
            f"Maven could not resolve the Kafka jars (exit {result.returncode}). Check that "
            f"Maven can reach its repositories (~/.m2/settings.xml).\n{tail}"
        )
