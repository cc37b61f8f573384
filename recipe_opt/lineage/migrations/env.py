"""Alembic environment for the lineage tables.

Run through `recipe_opt.lineage.upgrade` (or `recipe-opt lineage upgrade`), which passes the
connection in. Only `lineage_*` tables are ours: Optuna's tables share the database, so
autogeneration and comparison ignore everything else, and our revision lives in
`lineage_alembic_version`, never in Optuna's `alembic_version`.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from recipe_opt.lineage._models import TABLE_PREFIX, VERSION_TABLE, Base


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return bool(name and name.startswith(TABLE_PREFIX) and name != VERSION_TABLE)
    return True


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run lineage migrations through recipe_opt.lineage.upgrade(), which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
    )
    with context.begin_transaction():
        context.run_migrations()


run()
