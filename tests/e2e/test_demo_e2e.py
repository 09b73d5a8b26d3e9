"""`paystream demo`, run as a user runs it, against the session's broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.e2e


def summary_value(output: str, label: str) -> str:
    match = re.search(rf"│ {re.escape(label)}\s*│ ([^│]*?)\s*│", output)
    assert match, f"no {label!r} in the summary:\n{output}"
    return match.group(1)


def test_demo_prints_a_summary_that_accounts_for_every_order(kafka_bootstrap, tmp_path):
    env = dict(
        os.environ,
        PAYSTREAM_KAFKA_BOOTSTRAP=kafka_bootstrap,
        PAYSTREAM_HOME=str(tmp_path),
        PAYSTREAM_NAMESPACE=f"demo{uuid.uuid4().hex[:8]}",
        COLUMNS="160",
    )
    finished = subprocess.run(
        [sys.executable, "-m", "paystream", "demo", "--orders", "400"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    accepted = int(summary_value(output, "accepted"))
    rejected = sum(int(n) for n in re.findall(r"│ rejected: [A-Z_]+\s*│ (\d+)", output))
    # 400 orders plus the demo's card-testing burst.
    published = int(summary_value(output, "orders published (distinct)"))
    assert published > 400
    assert accepted + rejected == published
    assert rejected > 0
    assert summary_value(output, "payments in the read model") == str(published)
    risk = {o: int(n) for o, n in re.findall(r"│ risk: ([A-Z]+)\s*│ (\d+)", output)}
    assert sum(risk.values()) == accepted, "every accepted payment gets one risk decision"
    assert risk.get("APPROVE", 0) > 0 and risk.get("REJECT", 0) > 0
    assert "risk.features_missing" not in output, "payments were held only because risk lagged"
    assert summary_value(output, "dead-lettered") == "3"
    repeats = int(summary_value(output, "repeated commands published").split()[0])
    assert int(summary_value(output, "duplicates suppressed").split()[0]) == repeats
    assert "commands/s" in summary_value(output, "end to end, incl. worker start-up")
    captured = {c: int(n) for c, n in re.findall(r"│ captured on ([a-z_]+)\s*│ (\d+)", output)}
    not_captured = sum(int(n) for n in re.findall(r"│ not captured: [A-Z_]+\s*│ (\d+)", output))
    assert {"alipay", "wechat"} <= captured.keys(), output
    assert captured.keys() & {"card", "card_b"}, output
    # Every approved payment ended on the channels; held ones may end too once released.
    assert sum(captured.values()) + not_captured >= risk["APPROVE"]
