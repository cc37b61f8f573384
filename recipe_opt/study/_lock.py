"""One process at a time on a SQLite study database.

SQLite serialises writers, and a study on it is run by one process: a second `search` on the same
file would take the first one's running trial for a leftover of a killed run, fail and re-queue
it, and make the first crash when it reports (`Cannot tell a FAIL trial`); two processes creating
the tables of a fresh file race on Optuna's `alembic_version`. So a process that runs a SQLite
study holds an exclusive `flock` on `<database>.lock` beside it while it does; a second one is
refused up front, with one line naming the holder. The operating system releases the lock when
its process ends, however it ends (a killed process leaves the file, never the lock).
Server databases need no lock: workers coordinate through the database itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from recipe_opt.config import StorageURL
from recipe_opt.exceptions import StudyError

__all__ = ["StudyBusyError", "exclusive_study"]


class StudyBusyError(StudyError):
    """Another process is running a study in this SQLite database (not bad input: wait, or use a server)."""

    exit_code = 1


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


@contextlib.contextmanager
def exclusive_study(db: StorageURL, what: str) -> Iterator[None]:
    """Hold the database's lock for the block; raise `StudyBusyError` if another process holds it."""
    path = db.sqlite_path
    if path is None:  # a server database, or SQLite in memory
        yield
        return
    lock = _lock_path(path)
    fh: IO[str] = open(lock, "a+", encoding="utf-8")  # noqa: SIM115  (held open for the block)
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise StudyBusyError(
                f"storage {db.display}: {holder} is running a study in this database; SQLite lets one "
                "process write at a time: wait for it to finish, or share the study through a server "
                "database (--storage postgresql://..., `recipe-opt worker`)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"recipe-opt {what} (pid {os.getpid()})\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()
