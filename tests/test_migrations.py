"""Lineage schema migrations: a database of the previous release upgrades with its rows intact,
the models match the migrated schema, and Optuna's own migration table is never touched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from recipe_opt.lineage import Base, LineageStore, current_revision, head_revision, upgrade
from recipe_opt.lineage._models import VERSION_TABLE
from recipe_opt.recipe import Recipe

LEGACY = Path(__file__).parent / "data" / "lineage_schema_r1.sql"


def test_previous_release_database_upgrades_with_rows_intact(tmp_path: Path) -> None:
    db = tmp_path / "legacy.db"
    con = sqlite3.connect(db)
    con.executescript(LEGACY.read_text())
    con.close()
    url = f"sqlite:///{db}"
    engine = sa.create_engine(url)
    with engine.connect() as c:
        optuna_rev = c.execute(sa.text("select version_num from alembic_version")).scalar()
    assert current_revision(engine) is None

    store = LineageStore(url)
    assert store.migrated_from == "0.1 (unversioned)"
    assert current_revision(store.engine) == head_revision()
    v0 = store.get_version("demo/v0")
    # 0.1 marked every version `current`: now it is `registered` and the family's current version.
    assert (v0.status, v0.is_current, v0.weights_checksum) == ("registered", True, "a" * 64)
    sel = store.latest_selection("legacy-cycle-1")
    assert sel is not None and sel.trial_number == 11 and sel.values["gain"] == pytest.approx(0.62)
    assert isinstance(sel.recipe, Recipe) and sel.recipe.budget.steps == 550  # hash-checked on load
    assert store.counts()["lineage_selections"] == 1
    # New tables work on the old data.
    store.register_version("demo", "v0-hotfix", weights_uri="/m", weights_checksum=None, parent="v0")
    store.close()

    with engine.connect() as c:
        assert c.execute(sa.text("select version_num from alembic_version")).scalar() == optuna_rev
        assert c.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar() == head_revision()
    assert optuna.load_study(study_name="legacy-cycle-1", storage=url).directions is not None
    assert LineageStore(url).migrated_from is None  # at head: nothing runs again
    engine.dispose()


def test_models_match_the_migrated_schema(url: str) -> None:
    engine = sa.create_engine(url)
    upgrade(engine)
    with engine.connect() as c:
        ctx = MigrationContext.configure(
            c,
            opts={
                "include_name": lambda name, type_, _p: type_ != "table" or name.startswith("lineage_"),
                "compare_type": True,
            },
        )
        diff = [
            d
            for d in compare_metadata(ctx, Base.metadata)
            if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
        ]
    assert diff == [], diff
    engine.dispose()


def test_upgrade_from_first_revision_moves_current_to_family(url: str) -> None:
    engine = sa.create_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as c:
        c.execute(
            sa.text(
                "insert into lineage_model_versions (family, name, tier, weights_uri, status, created_at) "
                "values ('f', 'v0', 'foundation', '/m', 'current', CURRENT_TIMESTAMP)"
            )
        )
    before, after = upgrade(engine)
    assert (before, after) == ("0001", head_revision())
    store = LineageStore(url, engine=engine)
    assert store.current_version("f").name == "v0"  # type: ignore[union-attr]
    assert store.get_version("f/v0").status == "registered"
    engine.dispose()
