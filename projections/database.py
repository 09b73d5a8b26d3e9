"""Opening the read-model database: SQLite by default, any SQLAlchemy URL by configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

from projections.models import Base


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the demo, tests, audits) query while the projector writes; NORMAL sync
    # is safe here because a lost tail of transactions loses its offsets too and is replayed.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _make_parent_directory(url: str) -> None:
    # A fresh PAYSTREAM_HOME has no directory yet for the default SQLite file.
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def open_database(url: str) -> Engine:
    """An engine on ``url`` with every projection table created."""
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False} if is_sqlite else {},
    )
    if is_sqlite:
        _make_parent_directory(url)
        event.listen(engine, "connect", _tune_sqlite)
    Base.metadata.create_all(engine)
    return engine
