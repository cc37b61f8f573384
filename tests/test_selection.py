"""Gates and selection policies on studies built from known values (no training needed)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from recipe_opt.config import GatesConfig, load_study_config
from recipe_opt.exceptions import StudyError
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.study import Scored, create_sampler, gate_values, policy_scores, select_recipe
from recipe_opt.study._records import dominates
from tests.conftest import REPO


def cfg(**update: object):  # type: ignore[no-untyped-def]
    base = load_study_config(REPO / "studies" / "demo.yaml", check_paths=False)
    return base.model_copy(update=update)


def recipe(steps: int) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
        Replay(0.1),
        Schedule(1e-3, 0.1, "cosine"),
        Adapter(8, 2.0, ("q_proj",)),
        Budget(steps, 32),
    )


def study_of(points: list[tuple[float, float, float]], gates: GatesConfig) -> optuna.Study:
    """A study whose complete trials have the given (gain, forgetting, cost) and gate constraints."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for i, (gain, forgetting, cost) in enumerate(points):
        values = {"gain": gain, "forgetting": forgetting, "cost": cost}
        per_suite = {"arithmetic": forgetting, "strings": forgetting, "knowledge": forgetting}
        study.add_trial(
            optuna.trial.create_trial(
                values=[gain, forgetting, cost],
                user_attrs={
                    "recipe": recipe(100 + i).to_dict(),
                    "metrics": {**values, "forgetting_per_suite": per_suite},
                },
                constraints=gate_values(values, per_suite, gates),
            )
        )
    return study


def test_gate_values_are_measured_minus_bound() -> None:
    # The release's gates (one definition since 0.3): every retention suite is bounded, by its own
    # bound or else by max_forgetting, and an unset min_gain still asks for a positive gain.
    gates = GatesConfig(max_forgetting=0.05, max_forgetting_per_suite={"knowledge": 0.1}, min_gain=0.2, max_cost=1.0)
    v = gate_values({"gain": 0.5, "forgetting": 0.08, "cost": 0.4}, {"knowledge": 0.02, "strings": 0.07}, gates)
    assert v == pytest.approx(
        {
            "max_forgetting": 0.03,
            "regression:knowledge": -0.08,
            "regression:strings": 0.02,
            "min_gain": -0.3,
            "max_cost": -0.6,
        }
    )
    open_gates = GatesConfig(max_forgetting=None, max_new_task_drop=None)
    assert gate_values({"gain": 0.1, "forgetting": 0.0, "cost": 0.0}, {}, open_gates) == pytest.approx(
        {"min_gain": 1e-9 - 0.1}
    )


# (gain, forgetting, cost): 0 forgets too much, 1 gains most within gates, 2 is cheap, 3 balanced,
# 4 fails min_gain. All of 0-3 are Pareto-optimal.
POINTS = [(0.9, 0.30, 0.5), (0.7, 0.04, 0.8), (0.2, 0.00, 0.1), (0.6, 0.01, 0.3), (0.05, 0.0, 0.05)]
GATES = GatesConfig(max_forgetting=0.05, min_gain=0.1)


def test_infeasible_trials_are_never_selected() -> None:
    study = study_of(POINTS, GATES)
    assert {t.number for t in study.best_trials} == {1, 2, 3}  # 0 and 4 fail a gate
    sel = select_recipe(study, cfg(gates=GATES), policy="gain-within-gates")
    assert sel.trial_number == 1 and sel.policy == "gain-within-gates"
    assert "3 of 5 complete trials are feasible" in sel.reason


def test_knee_prefers_the_balanced_recipe() -> None:
    sel = select_recipe(study_of(POINTS, GATES), cfg(gates=GATES), policy="knee")
    assert sel.trial_number == 3


def test_utility_follows_the_weights() -> None:
    study = study_of(POINTS, GATES)
    assert select_recipe(study, cfg(gates=GATES), policy="utility", weights={"gain": 1.0}).trial_number == 1
    assert select_recipe(study, cfg(gates=GATES), policy="utility", weights={"cost": 1.0}).trial_number == 2
    assert "weights" in select_recipe(study, cfg(gates=GATES), policy="utility", weights={"gain": 1}).rule


def test_policy_scores_scale_over_the_front() -> None:
    rows = [{"gain": 0.0, "forgetting": 0.0, "cost": 1.0}, {"gain": 1.0, "forgetting": 1.0, "cost": 0.0}]
    assert policy_scores(rows, ["gain", "forgetting", "cost"], "utility", {"gain": 1, "forgetting": 1, "cost": 0}) == [
        1.0,
        1.0,
    ]
    assert policy_scores(rows, ["gain", "forgetting"], "knee", {}) == pytest.approx([-1.0, -1.0])
    with pytest.raises(StudyError, match="unknown selection policy"):
        policy_scores(rows, ["gain"], "best", {})


def test_nothing_feasible_is_an_error_not_a_silent_pick() -> None:
    study = study_of([(0.9, 0.3, 0.5)], GATES)
    with pytest.raises(StudyError, match="no recipe passes the release gates"):
        select_recipe(study, cfg(gates=GATES))


def test_reruns_decide_on_means_and_report_spread() -> None:
    study = study_of(POINTS, GATES)
    calls: list[tuple[int, int]] = []

    def rerun(r: Recipe, seed: int) -> tuple[dict[str, float], dict[str, float]]:
        calls.append((r.budget.steps, seed))
        # Trial 1 (steps 101) was lucky: its re-runs forget more than the gate allows.
        forgetting = 0.12 if r.budget.steps == 101 else 0.01
        per_suite = dict.fromkeys(("arithmetic", "strings", "knowledge"), forgetting)
        return {"gain": 0.6, "forgetting": forgetting, "cost": 0.5}, per_suite

    class Rerunner:
        def rerun(self, r: Recipe, seed: int, base: object) -> Scored:
            return Scored(*rerun(r, seed))

    sel = select_recipe(study, cfg(gates=GATES), policy="gain-within-gates", rerunner=Rerunner(), reruns=2, top_k=2)
    assert sorted(calls) == [(101, 1), (101, 2), (103, 1), (103, 2)]  # top 2 candidates, seeds 1 and 2
    assert sel.trial_number == 3  # trial 1's mean forgetting (0.093) fails the gate
    rows = {row["trial"]: row for row in sel.reruns["candidates"]}  # type: ignore[index]
    assert rows[1]["feasible"] is False and rows[1]["runs"] == 3
    assert rows[1]["mean"]["forgetting"] == pytest.approx((0.04 + 0.12 + 0.12) / 3)
    assert rows[3]["std"]["gain"] == pytest.approx(0.0)
    assert "Re-run with 2 extra seed(s)" in sel.reason and "±" in sel.reason


def test_dominance() -> None:
    o = ["gain", "forgetting"]

    def v(gain: float, forgetting: float) -> dict[str, float]:
        return {"gain": gain, "forgetting": forgetting}

    assert dominates(v(0.5, 0.1), v(0.4, 0.1), o)
    assert not dominates(v(0.5, 0.1), v(0.5, 0.1), o)
    assert not dominates(v(0.6, 0.2), v(0.5, 0.1), o)


@pytest.mark.parametrize("name", ["tpe", "gp", "nsga2", "random", "qmc"])  # botorch: below
def test_same_seed_same_sampler_same_recipes(name: str) -> None:
    from recipe_opt.space import load_search_space

    space = load_search_space(REPO / "search_spaces" / "default.yaml", ["mul", "add_text"])

    def run(seed: int) -> list[str]:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=create_sampler(name, seed, 4))
        hashes = []
        for _ in range(6):
            trial = study.ask()
            r = space.sample(trial)
            hashes.append(r.content_hash)
            # A deterministic stand-in objective: the sampler sees the same values both times.
            study.tell(trial, [r.replay.ratio * r.schedule.peak_lr, r.budget.steps / 1000])
        return hashes

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_informed_design_spans_cost_and_forgetting_axes() -> None:
    from recipe_opt.space import load_search_space

    space = load_search_space(REPO / "search_spaces" / "default.yaml", ["mul", "add_text"])
    design = space.informed_design()
    recipes = [space.sample(optuna.trial.FixedTrial(p)) for p in design]
    assert len({r.content_hash for r in recipes}) == len(design) == 8
    assert {r.replay.ratio for r in recipes} == {0.0, 0.25, 0.5}
    assert {r.budget.steps for r in recipes} == {300, 600, 900}
    assert all(r.mixture.as_dict() == pytest.approx({"mul": 0.5, "add_text": 0.5}) for r in recipes)


def test_mixed_design_tries_every_categorical_choice_on_the_same_axes() -> None:
    """`initial_design: mixed` keeps the plain design's centre and its steps x replay x LR axes,
    and spreads each unpinned categorical's choices over the other points (each at least twice)."""
    from collections import Counter

    from recipe_opt.space import load_search_space

    space = load_search_space(REPO / "search_spaces" / "default.yaml", ["mul", "add_text"])
    plain, mixed = space.informed_design(), space.informed_design(spread_choices=True)
    axes = ("steps", "replay_ratio", "peak_lr")
    assert [{k: p[k] for k in axes} for p in mixed] == [{k: p[k] for k in axes} for p in plain]
    assert mixed[0] == plain[0]
    for name, choices in (
        ("schedule", ["cosine", "linear", "constant_with_warmup"]),
        ("lora_alpha_ratio", [1.0, 2.0, 4.0]),
        ("target_modules", ["attention", "all_linear"]),
    ):
        assert {p[name] for p in plain} == {plain[0][name]}  # the plain design never moves them
        counts = Counter(p[name] for p in mixed)
        assert set(counts) == set(choices) and min(counts.values()) >= 2, (name, counts)
    # Two categoricals with three choices each do not move in lockstep.
    assert len({(p["schedule"], p["lora_alpha_ratio"]) for p in mixed[1:]}) == 7
    recipes = [space.sample(optuna.trial.FixedTrial(p)) for p in mixed]
    assert len({r.content_hash for r in recipes}) == 8


def test_botorch_sampler_models_constrained_objectives_after_startup() -> None:
    """qLogNEHVI with the gates as constraints: after the start-up trials its proposals come from
    the model (fitted on three objectives and `trial.set_constraint` values), not the random
    sampler, and the same seed proposes the same recipe (one model fit per run keeps this short)."""
    from recipe_opt.space import load_search_space

    space = load_search_space(REPO / "search_spaces" / "default.yaml", ["mul", "add_text"])

    def run(seed: int) -> tuple[list[str], int, int]:
        sampler = create_sampler("botorch", seed, 4)
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
        independent: list[str] = []
        original = sampler._independent_sampler.sample_independent

        def spy(*args: Any, **kwargs: Any) -> Any:
            independent.append(args[2])  # the parameter's name
            return original(*args, **kwargs)

        sampler._independent_sampler.sample_independent = spy
        hashes, startup = [], 0
        for i in range(5):
            trial = study.ask()
            r = space.sample(trial)
            hashes.append(r.content_hash)
            forgetting = r.replay.ratio * 0.1 + r.schedule.peak_lr * 50
            trial.set_constraint("max_forgetting", forgetting - 0.05)
            study.tell(trial, [r.schedule.peak_lr * 1e3, forgetting, r.budget.steps / 1000])
            if i == 3:
                startup = len(independent)
        assert all(t.state.is_finished() for t in study.trials)
        return hashes, startup, len(independent)

    hashes, startup, total = run(3)
    assert startup > 0  # the first four trials are drawn by the independent sampler
    assert total == startup  # trial 5's parameters (the space is fixed) all come from the model
    assert run(3)[0] == hashes


def test_sampler_from_a_missing_extra_names_the_install_command() -> None:
    from recipe_opt.registry import SamplerSpec

    spec = SamplerSpec("x", "help", lambda seed, n: None, requires=("recipe_opt_no_such_module",), extra="x")
    with pytest.raises(ValueError, match=r"needs recipe_opt_no_such_module.*pip install 'recipe-opt\[x\]'"):
        spec.create(0, 4)
