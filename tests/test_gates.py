"""One meaning for each gate: what the search counts as feasible is what the release passes.

Studies are built from known values (no training): each trial carries the metrics a real trial
records, and the constraints Optuna stores for it."""

from __future__ import annotations

import itertools
import random

import optuna
import pytest

from recipe_opt.config import GatesConfig, StudyConfig, load_study_config
from recipe_opt.exceptions import StudyError
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.study import StudyRecord, check_gates, gate_values, release_checks, select_recipe
from tests.conftest import REPO

SUITES = ("arithmetic", "strings", "knowledge")
NEW_TASKS = ("demo_mul", "demo_add_text")


def config(**gates: object) -> StudyConfig:
    base = load_study_config(REPO / "studies" / "demo.yaml", check_paths=False)
    return base.model_copy(update={"gates": GatesConfig(**gates)})  # type: ignore[arg-type]


def recipe(steps: int) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
        Replay(0.2),
        Schedule(1e-3, 0.05, "cosine"),
        Adapter(8, 2.0, ("q_proj",)),
        Budget(steps, 32),
    )


def study_of(cfg: StudyConfig, trials: list[dict[str, object]]) -> optuna.Study:
    """A study as `search` leaves it: its config, base scores, and complete trials with metrics.

    Each trial: gain, forgetting (aggregate), `per_suite` drops, `new` scores after (base 0.5
    on every new task) and cost.
    """
    study = optuna.create_study(directions=cfg.directions())
    study.set_user_attr("config", cfg.model_dump(mode="json", exclude={"config_path", "storage"}))
    base_tasks = {t: {"acc": 0.5} for t in (*NEW_TASKS, "demo_add", "demo_rev", "demo_copy", "demo_lookup")}
    study.set_user_attr("base_evaluation", {"tasks": base_tasks, "suites": {}, "seconds": 0.0})
    for i, t in enumerate(trials):
        values = {"gain": t["gain"], "forgetting": t["forgetting"], "cost": t.get("cost", 0.3)}
        per_suite = dict(t["per_suite"])  # type: ignore[call-overload]
        after = {task: {"acc": float(t.get("new", {}).get(task, 0.9))} for task in NEW_TASKS}  # type: ignore[attr-defined]
        scores = {task: (0.5, after[task]["acc"]) for task in NEW_TASKS}
        study.add_trial(
            optuna.trial.create_trial(
                values=[values[o] for o in cfg.objectives],  # type: ignore[misc]
                user_attrs={
                    "recipe": recipe(200 + 50 * i).to_dict(),
                    "metrics": {**values, "forgetting_per_suite": per_suite, "tasks_after": after},
                },
                constraints=gate_values(values, per_suite, cfg.gates, scores),  # type: ignore[arg-type]
            )
        )
    return study


def test_a_suite_over_the_aggregate_bound_is_infeasible_in_the_search_as_at_release() -> None:
    # Aggregate 0.02 is within max_forgetting 0.05, but `arithmetic` (no bound of its own) drops
    # 0.08: the release rejects it on that suite, so the search must not select it.
    cfg = config(max_forgetting=0.05, min_gain=None)
    drops = {"arithmetic": 0.08, "strings": -0.04, "knowledge": 0.02}
    study = study_of(cfg, [{"gain": 0.5, "forgetting": 0.02, "per_suite": drops}])
    checks = {c.gate: c for c in release_checks(cfg, {"gain": 0.5, "forgetting": 0.02, "cost": 0.3}, drops, "v0")}
    assert not checks["regression:arithmetic"].passed and checks["regression:arithmetic"].bound == 0.05
    record = StudyRecord.read(study, gates=cfg.gates)
    assert record.front == []  # what the command line's front table lists
    assert study.trials[0].constraints["regression:arithmetic"] == pytest.approx(0.03)  # Optuna's constraint
    with pytest.raises(StudyError, match="no recipe passes the release gates"):
        select_recipe(study, cfg)


def test_no_min_gain_means_a_positive_gain_in_the_search_too() -> None:
    cfg = config(max_forgetting=0.05, min_gain=None)
    flat = dict.fromkeys(SUITES, 0.0)
    study = study_of(
        cfg, [{"gain": 0.0, "forgetting": 0.0, "per_suite": flat}, {"gain": 0.1, "forgetting": 0.0, "per_suite": flat}]
    )
    assert select_recipe(study, cfg).trial_number == 1  # the larger gain anyway; now also the only feasible
    only_zero = study_of(cfg, [{"gain": 0.0, "forgetting": 0.0, "per_suite": flat}])
    with pytest.raises(StudyError, match="no recipe passes"):
        select_recipe(only_zero, cfg)


def test_a_new_task_that_got_worse_fails_its_gate_while_the_suite_gains() -> None:
    # The demo's cycle 3: one new task fell (0.227 -> 0.091) while the other carried the suite.
    cfg = config(max_forgetting=0.05, min_gain=0.1, max_new_task_drop=0.05)
    flat = dict.fromkeys(SUITES, 0.0)
    worse = {"demo_mul": 0.36, "demo_add_text": 1.0}  # demo_mul 0.5 -> 0.36: a drop of 0.14
    both = {"demo_mul": 0.55, "demo_add_text": 0.8}
    study = study_of(
        cfg,
        [
            {"gain": 0.43, "forgetting": 0.0, "per_suite": flat, "new": worse},
            {"gain": 0.18, "forgetting": 0.0, "per_suite": flat, "new": both},
        ],
    )
    assert study.trials[0].constraints["new_task:demo_mul"] == pytest.approx(0.14 - 0.05)
    assert select_recipe(study, cfg).trial_number == 1  # trial 0 gains more, but makes demo_mul worse
    checks = release_checks(cfg, {"gain": 0.43, "forgetting": 0.0, "cost": 0.3}, flat, "v2", {"demo_mul": (0.5, 0.36)})
    failed = [c for c in checks if not c.passed]
    assert [c.gate for c in failed] == ["new_task:demo_mul"]
    assert "demo_mul 0.500 -> 0.360" in failed[0].note


def test_search_feasibility_and_release_decision_agree_on_any_values() -> None:
    rng = random.Random(0)
    for max_f, per_k, min_gain, max_drop in itertools.product((0.05, None), (0.1, None), (0.1, None), (0.05, None)):
        cfg = config(
            max_forgetting=max_f,
            max_forgetting_per_suite={} if per_k is None else {"knowledge": per_k},
            min_gain=min_gain,
            max_new_task_drop=max_drop,
        )
        for _ in range(25):
            drops = {s: rng.uniform(-0.1, 0.15) for s in SUITES}
            values = {"gain": rng.uniform(-0.1, 0.6), "forgetting": sum(drops.values()) / 3, "cost": 0.3}
            new = {t: (0.5, rng.uniform(0.35, 1.0)) for t in NEW_TASKS}
            constraints = gate_values(values, drops, cfg.gates, new)
            search_feasible = all(v <= 0 for v in constraints.values())
            released = all(c.passed for c in release_checks(cfg, values, drops, "v0", new))
            assert search_feasible == released, (cfg.gates, values, drops, new)
            assert {c.gate for c in check_gates(cfg.gates, _scored(values, drops, new))} >= set(constraints)


def _scored(values: dict[str, float], drops: dict[str, float], new: dict[str, tuple[float, float]]):  # type: ignore[no-untyped-def]
    from recipe_opt.study import Scored

    return Scored(values, drops, new)


def test_a_drop_equal_to_its_bound_passes_despite_float_rounding() -> None:
    # 1.0 - 0.95 is 0.05000000000000004: "at most 0.05" must still pass it, in search and release.
    cfg = config(max_forgetting=0.05, min_gain=0.1)
    drops = {"arithmetic": 1.0 - 0.95, "strings": 0.0, "knowledge": 0.0}
    values = {"gain": 0.3 - 0.2, "forgetting": sum(drops.values()) / 3, "cost": 0.3}  # gain 0.09999999999999998
    assert all(c.passed for c in release_checks(cfg, values, drops, "v0"))
    assert all(v <= 0 for v in gate_values(values, drops, cfg.gates).values())
