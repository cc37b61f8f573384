"""Lineage store on SQLite and PostgreSQL, beside an Optuna study in the same database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from recipe_opt.exceptions import LineageError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule

PG_URL = os.environ.get("RECIPE_OPT_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _postgres_url() -> Iterator[str]:
    """A fresh schema per test run, so runs never collide; dropped afterwards."""
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as exc:  # no server, no driver
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as c:
        c.execute(sa.text(f'create schema "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as c:
            c.execute(sa.text(f'drop schema "{schema}" cascade'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
    else:
        yield from _postgres_url()


def recipe(replay: float) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"a": 1.0}),
        Replay(replay),
        Schedule(1e-3, 0.1, "cosine"),
        Adapter(8, 2.0, ("q_proj",)),
        Budget(100, 8),
    )


def test_versions_cycles_selections(url: str) -> None:
    # Optuna first: its tables (and its `alembic_version`) live beside ours.
    optuna.create_study(study_name="s1", storage=url, directions=["maximize", "minimize"])
    store = LineageStore(url)
    v0 = store.ensure_version("fam", "v0", weights_uri="/m/v0", weights_checksum="a" * 64)
    assert store.ensure_version("fam", "v0", weights_uri="/m/v0", weights_checksum="a" * 64) == v0
    with pytest.raises(LineageError, match="other weights"):
        store.ensure_version("fam", "v0", weights_uri="/m/v0", weights_checksum="b" * 64)
    v1 = store.ensure_version("fam", "v1", weights_uri="/m/v1", parent="v0", tier="industrial")
    assert v1 != v0
    with pytest.raises(LineageError, match="not registered"):
        store.ensure_version("fam", "v9", weights_uri="/x", parent="v8")

    cycle = store.ensure_cycle(
        "s1", base_version_id=v0, optuna_study_id=1, objectives={"gain": "maximize"}, data_manifest={}, search_space={}
    )
    r = recipe(0.2)
    for number, policy in ((3, "gain-within-gates"), (5, "knee")):  # the same recipe twice is stored once
        store.record_selection(
            cycle,
            r,
            trial_number=number,
            policy=policy,
            rule="rule",
            reason="why",
            values={"gain": 0.5, "forgetting": 0.01},
            metrics={"k": 1},
            n_complete=6,
        )
    counts = store.counts()
    assert counts == {
        "lineage_model_versions": 2,
        "lineage_update_cycles": 1,
        "lineage_recipes": 1,
        "lineage_selections": 2,
    }
    latest = store.latest_selection("s1")
    assert latest is not None
    assert (latest.trial_number, latest.policy, latest.base_version, latest.family) == (5, "knee", "v0", "fam")
    assert latest.recipe == r and latest.values["cost"] is None

    # Optuna's own migration table is untouched and the study still loads.
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"alembic_version", "studies", "lineage_model_versions", "lineage_recipes"} <= tables
    assert optuna.load_study(study_name="s1", storage=url).directions is not None
    store.close()


def test_failed_write_leaves_nothing(url: str) -> None:
    store = LineageStore(url)
    with pytest.raises(LineageError, match="does not exist"):
        store.record_selection(
            12345, recipe(0.1), trial_number=0, rule="r", reason="w", values={"gain": 0.1}, metrics={}, n_complete=1
        )
    assert store.counts()["lineage_recipes"] == 0  # the recipe row was rolled back with the selection
    store.close()


def test_lineage_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, recipe_opt.lineage; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
