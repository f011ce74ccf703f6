"""Safe first use of a tracking store: one process at a time creates a SQLite store's schema.

MLflow creates a SQLite store's tables the first time a process opens it. Two processes that
open a fresh store at once both try (``table experiment_tags already exists``). An exclusive
lock on ``<database>.lock``, next to the file, held while a process opens the store for the first
time, makes the second wait until the first has finished; then it finds the tables.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def first_use_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock next to a SQLite store (no-op for other stores)."""
    database = sqlite_database(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
