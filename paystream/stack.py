"""Starting and stopping paystream's own processes (worker, dispatcher, projector) as child
processes.

The demo, the benchmark and the end-to-end tests run them as real processes, so a test can
kill one with SIGKILL exactly as a crash would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Worker settings that run one processor alone, as the benchmarks measure them.
RISK_ONLY = {"PAYSTREAM_WORKER_ROLES": '["risk"]'}
ROUTER_ONLY = {"PAYSTREAM_WORKER_ROLES": '["routing"]'}


@dataclass(frozen=True)
class StackEnvironment:
    """What a child process needs to join one paystream namespace."""

    bootstrap: str
    namespace: str
    database_url: str
    # More PAYSTREAM_* settings (the channels' credentials file, the notification port...).
    settings: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """The environment of a child process: ours plus the PAYSTREAM_* settings."""
        env = dict(os.environ)
        env.update(
            PAYSTREAM_KAFKA_BOOTSTRAP=self.bootstrap,
            PAYSTREAM_NAMESPACE=self.namespace,
            PAYSTREAM_DATABASE_URL=self.database_url,
        )
        env.update(self.settings)
        return env


class ChildProcess:
    """One paystream process (``paystream worker`` or ``paystream project``) with its log."""

    def __init__(self, role: str, environment: StackEnvironment, log_path: Path) -> None:
        self.role = role
        self.log_path = log_path
        self._environment = environment
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process, appending its output to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "paystream", self.role],
                env=self._environment.variables(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def cpu_seconds(self) -> float | None:
        """CPU time (user and system) the process has used so far; None where the system does
        not tell (no /proc) or the process is not running."""
        if self._process is None or not self.running:
            return None
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # utime and stime, fields 14 and 15 of stat(5), counted after the ")" of the name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or commit anything."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM for a clean shutdown; SIGKILL if it does not end within ``timeout``."""
        if self._process is None or not self.running:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's log, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_workers(
    environment: StackEnvironment, log_dir: Path, name: str, count: int
) -> Iterator[list[ChildProcess]]:
    """``count`` worker processes (logs ``<name>-<n>.log``), stopped when the block ends."""
    workers = [
        ChildProcess("worker", environment, log_dir / f"{name}-{number}.log")
        for number in range(count)
    ]
    for worker in workers:
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
