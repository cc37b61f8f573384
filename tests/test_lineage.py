"""Lineage store on SQLite and PostgreSQL, beside an Optuna study in the same database."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy as sa

from recipe_opt.exceptions import LineageError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule


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
        "lineage_families": 1,
        "lineage_evaluations": 0,
        "lineage_release_decisions": 0,
        "lineage_fidelity": 0,
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


def _apply(store: LineageStore, study: str, name: str, *, released: bool, gain: float) -> None:
    from recipe_opt.lineage import SuiteScore

    scores = [
        SuiteScore("new_skills", "new", 0.2 + gain, {"t_new": {"acc": 0.2 + gain}}, "native", None),
        SuiteScore("old", "retention", 0.95, {"t_old": {"acc": 0.95}}, "native", None),
    ]
    parent_scores = [
        SuiteScore("new_skills", "new", 0.2, {"t_new": {"acc": 0.2}}, "native", None),
        SuiteScore("old", "retention", 1.0, {"t_old": {"acc": 1.0}}, "native", None),
    ]
    store.record_apply(
        study_name=study,
        name=name,
        weights_uri=f"/m/{name}",
        weights_checksum="c" * 64,
        tier=None,
        recipe=recipe(0.25),
        trial_number=4,
        released=released,
        checks=[{"gate": "min_gain", "measured": gain, "bound": 0.1, "passed": released}],
        reasons=[] if released else ["new-task gain too small"],
        metrics={"full": {"gain": gain, "forgetting": 0.05}},
        parent_scores=parent_scores,
        scores=scores,
        proxy={"gain": gain * 0.8, "forgetting": 0.03, "cost": 0.1},
        full={"gain": gain, "forgetting": 0.05, "cost": 0.4},
    )


def test_apply_release_reject_rollback(url: str) -> None:
    store = LineageStore(url)
    v0 = store.ensure_version("fam", "v0", weights_uri="/m/v0", tier="industrial")
    assert store.current_version("fam").name == "v0"  # type: ignore[union-attr]
    store.ensure_cycle(
        "c1",
        base_version_id=v0,
        optuna_study_id=1,
        objectives={},
        data_manifest={"new/a": {"sha256": "d"}},
        search_space={},
    )
    _apply(store, "c1", "v1", released=True, gain=0.5)
    v1 = store.get_version("fam/v1")
    assert (v1.parent, v1.tier, v1.status, v1.is_current) == ("v0", "industrial", "released", True)
    assert v1.data_manifest == {"new/a": {"sha256": "d"}}  # the cycle's data, kept with the version
    assert {e.suite: e.score for e in v1.evaluations} == {"new_skills": 0.7, "old": 0.95}
    assert v1.decision is not None and v1.decision.action == "release" and v1.decision.cycle == "c1"
    assert store.producing_cycle("fam", "v1") == "c1"
    assert {e.suite for e in store.get_version("v0", "fam").evaluations} == {"new_skills", "old"}

    # A version that fails its gates is registered as rejected; the parent stays current.
    v1_id = store.get_version("fam/v1").id
    store.ensure_cycle("c2", base_version_id=v1_id, optuna_study_id=2, objectives={}, data_manifest={}, search_space={})
    _apply(store, "c2", "v2", released=False, gain=0.01)
    v2 = store.get_version("fam/v2")
    assert (v2.status, v2.is_current, v2.decision.reasons) == ("rejected", False, ["new-task gain too small"])  # type: ignore[union-attr]
    assert store.current_version("fam").name == "v1"  # type: ignore[union-attr]
    with pytest.raises(LineageError, match="already exists"):
        _apply(store, "c2", "v2", released=True, gain=0.3)

    pairs = store.fidelity_pairs("fam")
    assert [(p.cycle, p.proxy["gain"], p.full["gain"]) for p in pairs] == [("c1", 0.4, 0.5), ("c2", 0.008, 0.01)]

    old, new = store.rollback("fam")
    assert (old.name, old.status, new.name, new.is_current) == ("v1", "rolled-back", "v0", True)
    with pytest.raises(LineageError, match="no parent"):
        store.rollback("fam")
    with pytest.raises(LineageError, match="did you mean 'fam'"):
        store.rollback("fan")
    store.close()


def test_register_and_lookup_errors(url: str) -> None:
    store = LineageStore(url)
    v = store.register_version("base", "foundation-2026", weights_uri="hf://org/m", weights_checksum=None)
    assert v.is_current and v.decision is not None and v.decision.action == "register"
    child = store.register_version(
        "base",
        "ft-1",
        weights_uri="/w",
        weights_checksum=None,
        parent="foundation-2026",
        tier="application",
        make_current=False,
    )
    assert (child.parent, child.is_current) == ("foundation-2026", False)
    with pytest.raises(LineageError, match="already registered"):
        store.register_version("base", "ft-1", weights_uri="/w", weights_checksum=None)
    with pytest.raises(LineageError, match="`tier` must be one of"):
        store.register_version("base", "x", weights_uri="/w", weights_checksum=None, tier="gold")
    with pytest.raises(LineageError, match="did you mean 'ft-1'"):
        store.get_version("ft-2")
    store.register_version("base", "ft-2", weights_uri="/w", weights_checksum=None, parent="ft-1")
    with pytest.raises(LineageError, match="not an ancestor"):
        store.rollback("base", to="nope")
    assert store.counts()["lineage_model_versions"] == 3  # the refused registrations wrote nothing
    store.close()
