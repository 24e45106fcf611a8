"""The database engine and the migration runner.

Each package owns its tables through an append-only, numbered list of migrations
(`MIGRATIONS` beside the code that uses the tables). Never edit one that has
shipped; add a new one at the end. `schema_migrations` records which have run.
SQLite by default; any SQLAlchemy URL (PostgreSQL) works with the same code, so
migrations and queries use portable SQL only.
"""
from __future__ import annotations

import errno
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from core.errors import StorageUnavailable

Migration = tuple[str, Callable[[Connection], None]]


def connect(url: str, migrations: Iterable[Sequence[Migration]] = ()) -> Engine:
    """An engine for `url`, with every given package's migrations applied."""
    if url.startswith("sqlite:///") and "uri=true" not in url:  # a file: URI names a file that must exist
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    with engine.begin() as conn:
        migrate(conn, [step for steps in migrations for step in steps])
    return engine


def migrate(conn: Connection, migrations: Sequence[Migration]) -> list[str]:
    """Run the migrations not yet applied, in order; returns their names."""
    names = [name for name, _ in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate migration names in {names}")
    conn.execute(text(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR(200) PRIMARY KEY, applied_at VARCHAR(40) NOT NULL)"
    ))
    done = {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}
    applied = []
    for name, step in migrations:
        if name in done:
            continue
        step(conn)
        conn.execute(
            text("INSERT INTO schema_migrations (name, applied_at) VALUES (:n, CURRENT_TIMESTAMP)"), {"n": name}
        )
        applied.append(name)
    return applied


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the UI read while a turn writes; concurrent users do not see "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# What storage faults look like, from SQLite's messages, PostgreSQL's SQLSTATE codes and the OS.
READ_ONLY = "the database is read-only, so nothing can be saved; make it writable and try again"
FULL = "the disk holding the data is full, so nothing can be saved; free some space and try again"
UNREACHABLE = "the database cannot be reached or opened; check database_url and that the server is up"
DISK_ERROR = "the disk holding the data failed to read or write; check it and try again"
_SQLITE = {"readonly database": READ_ONLY, "disk is full": FULL, "disk i/o error": DISK_ERROR,
           "unable to open database": UNREACHABLE}
_PG_SQLSTATE = {"25006": READ_ONLY, "53100": FULL, "08000": UNREACHABLE, "08001": UNREACHABLE,
                "08003": UNREACHABLE, "08006": UNREACHABLE, "57P03": UNREACHABLE}
_ERRNO = {errno.EROFS: READ_ONLY, errno.ENOSPC: FULL, errno.EDQUOT: FULL}


def storage_fault(exc: BaseException) -> StorageUnavailable | None:
    """The error for people if `exc` (or what caused it) is a read-only, full or unreachable
    store; None for anything else, which stays a bug to report."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageUnavailable):
            return exc
        if isinstance(exc, DBAPIError):
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if code in _PG_SQLSTATE:
                return StorageUnavailable(_PG_SQLSTATE[code])
            message = str(exc.orig).lower()
            for needle, for_people in _SQLITE.items():
                if needle in message:
                    return StorageUnavailable(for_people)
        if isinstance(exc, OSError) and exc.errno in _ERRNO:
            return StorageUnavailable(_ERRNO[exc.errno])
        exc = exc.__cause__ or exc.__context__
    return None
