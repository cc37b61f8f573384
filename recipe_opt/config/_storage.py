"""The study's database URL: how it is shown, what kind it is, where a SQLite file lives, and
what is wrong with it before anything connects.

One type for what was seven copies of `sqlite:///` string handling: the study, the lineage
commands and the workers all ask a `StorageURL`. Passwords never leave it in clear: `display`
masks everything between the user name and the last `@` before the host, which also covers a
password with an unencoded `@` in it (`user:pre@s3cr3t@host`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STORAGE_ENV", "StorageURL", "masked_url"]

# The environment variable every study command reads the storage URL from (keeps a password out
# of the process list); `search --workers N` hands it to its workers the same way.
STORAGE_ENV = "RECIPE_OPT_STORAGE"

_SCHEME = re.compile(r"^([a-z][a-z0-9+]*://)", re.IGNORECASE)
SQLITE_PREFIX = "sqlite:///"


def _credentials(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user, password, rest after the `@`) of a URL with a password, else None.

    The user information ends at the last `@` before the query string: a password may hold an
    unencoded `@` (or `/`), a host never does.
    """
    m = _SCHEME.match(url)
    if not m:
        m2 = re.match(r"^([^/:@]*):(.*)@([^@]*)$", url)  # no scheme at all: `user:password@host`
        return ("", m2.group(1), m2.group(2), m2.group(3)) if m2 else None
    scheme, rest = m.group(1), url[m.end() :]
    head = rest.split("?", 1)[0]
    at = head.rfind("@")
    if at < 0:
        return None
    userinfo, after = rest[:at], rest[at + 1 :]
    if ":" not in userinfo:
        return None
    user, password = userinfo.split(":", 1)
    return scheme, user, password, after


def masked_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***."""
    parts = _credentials(url)
    if parts is None:
        return url
    scheme, user, _, after = parts
    return f"{scheme}{user}:***@{after}"


@dataclass(frozen=True)
class StorageURL:
    """A SQLAlchemy database URL as recipe-opt uses it (the study's and the lineage's database)."""

    url: str

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        """The URL with any password replaced by ***: for messages, logs and records."""
        return masked_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def is_server(self) -> bool:
        """A database several processes can write at once (SQLite serialises writers: optuna#820)."""
        return not self.is_sqlite

    @property
    def is_postgresql(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (None for a server database or an in-memory one)."""
        if not self.url.startswith(SQLITE_PREFIX):
            return None
        path = self.url[len(SQLITE_PREFIX) :].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)

    def exists(self) -> bool:
        """False only for a SQLite file that is not there yet (a server is asked when connecting)."""
        path = self.sqlite_path
        return path is None or path.is_file()

    def scrub(self, text: str) -> str:
        """`text` (a driver's error message, say) without this URL's password."""
        parts = _credentials(self.url)
        return text.replace(parts[2], "***") if parts and parts[2] else text

    def resolved(self, base: Path) -> StorageURL:
        """A relative SQLite path (`sqlite:///x.db`) made absolute against `base`."""
        path = self.sqlite_path
        if path is None or path.is_absolute():
            return self
        return StorageURL(f"{SQLITE_PREFIX}{(base / path).resolve()}")

    def problem(self) -> str | None:
        """What is wrong with the URL that can be told without connecting: its form, its dialect,
        its driver, a SQLite file's directory. None if nothing is."""
        from sqlalchemy.engine import make_url

        from recipe_opt.exceptions import first_line

        shown = self.display
        parts = _credentials(self.url)
        if parts is not None and "@" in parts[2]:
            return (
                f"the password in {shown!r} holds an unencoded '@': write it as %40 (a URL ends its password "
                "at the first '@', so the rest would be taken for the host)"
            )
        if not _SCHEME.match(self.url):
            return f"not a database URL (dialect+driver://user:password@host:port/database), but got {shown!r}"
        try:
            parsed = make_url(self.url)
        except Exception as exc:  # a port that is not a number, ...
            return f"not a valid database URL ({self.scrub(first_line(exc))}), but got {shown!r}"
        try:
            dialect = parsed.get_dialect()
        except Exception:  # sqlalchemy.exc.NoSuchModuleError: no such dialect
            return (
                f"unknown database dialect {parsed.drivername!r} (SQLAlchemy's: sqlite, postgresql, mysql, ...), "
                f"but got {shown!r}"
            )
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            return f"the database driver for {parsed.drivername!r} is not installed ({exc}); got {shown!r}"
        path = self.sqlite_path
        if path is not None and not path.parent.is_dir():
            return f"directory not found: {path.parent} (for the SQLite database {path})"
        if path is not None:
            # SQLite writes a journal beside the file, so its directory must take new files too;
            # probed for real, which also finds a read-only filesystem (permission bits do not).
            from recipe_opt._files import unwritable

            why = unwritable(path.parent)
            if why is None and path.exists() and not os.access(path, os.W_OK):
                why = "the file is read-only"
            if why is not None:
                return f"the SQLite database {path} cannot be written: {why}"
        return None
