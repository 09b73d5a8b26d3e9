"""Opening the read-model database on a machine where nothing exists yet."""

from __future__ import annotations

from sqlalchemy import inspect

from projections.database import open_database


def test_a_fresh_home_gets_its_sqlite_directory_and_every_table(tmp_path):
    path = tmp_path / "fresh-home" / "nested" / "paystream.db"
    engine = open_database(f"sqlite:///{path}")
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert path.exists()
    assert {"payment_status", "risk_decisions", "projection_offsets"} <= tables
