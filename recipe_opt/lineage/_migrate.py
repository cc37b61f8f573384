"""Schema migrations of the lineage tables (Alembic, own version table).

`upgrade(engine)` brings any lineage database to the current schema:

* empty database (or one holding only an Optuna study): every revision runs from 0001;
* a database written by recipe-opt 0.1, before migrations existed (lineage tables present but
  no `lineage_alembic_version`): stamped at 0001, the schema those versions created, then
  upgraded, so its rows are kept;
* already at head: nothing runs.

Optuna keeps its own revision in `alembic_version` in the same database; ours is
`lineage_alembic_version`, so neither tool ever reads or moves the other's.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from recipe_opt.lineage._models import TABLE_PREFIX, VERSION_TABLE

__all__ = ["MIGRATIONS_DIR", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FIRST_REVISION = "0001"


def _config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The lineage schema revision of the database (None: no lineage tables yet, or 0.1 unstamped)."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the lineage tables to `revision`; returns (revision before, revision after).

    Runs in one transaction where the database allows it (PostgreSQL, SQLite): a failed
    migration leaves the schema as it was.
    """
    with engine.begin() as conn:
        cfg = _config(conn)
        tables = set(sa.inspect(conn).get_table_names())
        before: str | None
        if VERSION_TABLE not in tables and TABLE_PREFIX + "model_versions" in tables:
            command.stamp(cfg, _FIRST_REVISION)
            before = "0.1 (unversioned)"
        else:
            before = _revision(conn)
        command.upgrade(cfg, revision)
        after = _revision(conn)
    return before, str(after)
