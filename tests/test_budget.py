"""A budgeted search (`trials.budget`): the plan's arithmetic, promotion by Pareto rank, and, on
the tiny world, continuation (a promoted trial resumes its saved state, its compute counted once)
and `apply` reusing the finalist's full run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from recipe_opt.config import MultiFidelityConfig, SearchBudget
from recipe_opt.exceptions import ConfigError
from recipe_opt.study._ladder import plan_ladder, promotion_order
from tests.conftest import write_study

U = 0.448  # TFLOP of one full update, the plan's unit


def _plan(budget: str, **mf: object):  # type: ignore[no-untyped-def]
    cfg = MultiFidelityConfig.model_validate(mf)
    return plan_ladder(
        cfg, SearchBudget.parse(budget), unit_tflop=U, tflop_per_hour=4 * U, proxy_batch=32, recipe_batch=32
    )


def test_budget_forms() -> None:
    assert [str(SearchBudget.parse(t)) for t in ("0.25x", ".5X", "40 TFLOP", "2 tflops", "0.5 gpu-hours", "2h")] == [
        "0.25x",
        "0.5x",
        "40 TFLOP",
        "2 TFLOP",
        "0.5 gpu-hours",
        "2 gpu-hours",
    ]
    for bad in ("25%", "x", "-1x", "0 TFLOP", "1 week"):
        with pytest.raises(ValueError, match="budget"):
            SearchBudget.parse(bad)


def test_the_plan_fits_the_most_screens_into_the_budget() -> None:
    # Compressed screens of 5% of the steps at batch 8 of 32 cost 0.0125 updates each: 0.25x
    # affords 20 of them; the finalist's full run is the update itself, not the budget's.
    plan = _plan("0.25x", screen_fraction=0.05, screen_batch_size=8, rungs=[])
    assert [(r.index, r.kind, r.share, r.count) for r in plan.rungs] == [
        (0, "compressed", 0.05, 20),
        (1, "prefix", 1.0, 1),
    ]
    assert plan.overhead_tflop == pytest.approx(0.25 * U)
    # The same budget as TFLOP, and as hours of training at 4 updates an hour, plans the same.
    for same in (f"{0.25 * U} TFLOP", "0.0625 gpu-hours"):
        other = _plan(same, screen_fraction=0.05, screen_batch_size=8, rungs=[])
        assert [r.count for r in other.rungs] == [20, 1]
    # Prefix screens continue: rung 1 costs its share less the screen's (0.25 - 0.05) plus its
    # annealing branch (0.25 x 0.025 / 0.05); the final run the rest of the steps (0.75). At 1x:
    # 6 screens (0.45) + 2 at rung 1 (0.65) + 0.75 - 1 = 0.85; 7 would need 3 at rung 1: 1.25.
    plan = _plan("1x", screen="prefix", screen_fraction=0.05, screen_anneal=0.025, rungs=[0.25], eta=3)
    assert [r.count for r in plan.rungs] == [6, 2, 1]
    assert [round(r.cost, 4) for r in plan.rungs] == [0.075, 0.325, 0.75]
    assert plan.overhead_tflop == pytest.approx(0.85 * U)
    # A compressed screen cannot be continued: its first rung trains from step 0.
    plan = _plan("1x", screen_fraction=0.05, rungs=[0.25], eta=3)
    assert plan.rungs[1].cost == pytest.approx(0.25)
    capped = plan_ladder(
        MultiFidelityConfig(rungs=[]),
        SearchBudget.parse("1x"),
        unit_tflop=U,
        tflop_per_hour=U,
        proxy_batch=32,
        recipe_batch=32,
        max_screens=7,
    )
    assert capped.rungs[0].count == 7  # n_trials caps the screens


def test_a_budget_too_small_for_the_smallest_plan_is_one_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        _plan("0.05x", screen_fraction=0.05, rungs=[0.25])
    (line,) = [str(p) for p in info.value.problems]
    assert line.startswith("trials.budget:") and "4 screens" in line and "raise the budget" in line


def test_promotion_takes_feasible_fronts_as_an_epsilon_net_then_the_nearest_misses() -> None:
    objectives = ["gain", "forgetting", "cost"]
    pts = {
        "a": {"gain": 0.6, "forgetting": 0.02, "cost": 0.5},  # the front's best gain
        "b": {"gain": 0.55, "forgetting": 0.02, "cost": 0.45},  # next to a
        "c": {"gain": 0.2, "forgetting": 0.0, "cost": 0.1},  # the front's far end
        "d": {"gain": 0.5, "forgetting": 0.03, "cost": 0.5},  # dominated by a
        "e": {"gain": 0.9, "forgetting": 0.5, "cost": 0.1},  # misses the gates by a lot
        "f": {"gain": 0.1, "forgetting": 0.06, "cost": 0.1},  # misses them by a little
    }
    miss = {"e": 0.45, "f": 0.01}
    order = promotion_order(
        list(pts), pts.__getitem__, objectives, feasible=lambda k: k not in miss, excess=lambda k: miss.get(k, 0.0)
    )
    # The far end of the front comes before the near neighbour of the best gain: the spread is kept.
    assert order == ["a", "c", "b", "d", "f", "e"]


@pytest.mark.integration
def test_a_budgeted_search_continues_promoted_trials_and_apply_reuses_the_full_run(
    tiny_world: Path, tmp_path: Path
) -> None:
    space = (Path(__file__).resolve().parents[1] / "search_spaces" / "default.yaml").read_text()
    space = space.replace(
        "steps: {type: int, low: 200, high: 1000, step: 50}", "steps: {type: int, low: 120, high: 200, step: 40}"
    )
    cfg = write_study(
        tmp_path / "s",
        tiny_world,
        name="budgeted",
        space=space,
        sampler="{name: random}",
        gates="{max_forgetting: 1.0, max_new_task_drop: null, min_gain: -1.0}",
        extra=(
            "trials: {n_trials: 4, budget: 1.5x}\n"
            "multi_fidelity: {screen: prefix, screen_fraction: 0.1, screen_anneal: 0.05, rungs: [0.4], eta: 2}\n"
            "apply: {weights_dir: models}"  # no newline after the last: write_study counts extra's lines
        ),
    )
    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg)], capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plan: 4 x screen (prefix, 0.1 of the steps), 2 x rung 1 (0.4 of the steps), 1 x full update" in r.stdout
    study = optuna.load_study(study_name="budgeted", storage=f"sqlite:///{tmp_path / 's' / 'demo.db'}")
    trials = {t.number: t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    fid = {n: t.user_attrs["fidelity"] for n, t in trials.items()}
    assert [f["rung"] for f in fid.values()] == [0, 0, 0, 0, 1, 1, 2]
    for n, f in fid.items():
        t = trials[n]
        steps = t.user_attrs["recipe"]["budget"]["steps"]
        train = t.user_attrs["metrics"]["train"]
        if f["rung"] == 0:
            assert "continues" not in f and train["start_step"] == 0
            assert train["proxy_steps"] == round(0.1 * steps) + round(0.05 * steps)  # prefix, then its branch
            continue
        parent = trials[f["continues"]]
        assert parent.params == t.params and fid[parent.number]["rung"] == f["rung"] - 1
        # Resumed where the parent's prefix stopped (not after its annealing branch); only the
        # new steps are trained, and only they are this trial's compute.
        assert train["start_step"] == fid[parent.number]["step"]
        stop = steps if f["full"] else round(0.4 * steps)
        branch = 0 if f["full"] else round(0.4 * 0.5 * steps)
        assert train["proxy_steps"] == stop - train["start_step"] + branch
        assert t.user_attrs["proxy_tflops"] == pytest.approx(train["proxy_tflops"])
    # The finalist is the pick; its chain (screen, rung 1, final) trained every step once: the
    # chain's main-branch compute is the full update's, the annealing branches come on top.
    (final,) = [n for n, f in fid.items() if f["full"]]
    assert study.user_attrs["selection"]["trial_number"] == final
    chain, n = [], final
    while n is not None:
        chain.append(n)
        n = fid[n].get("continues")
    main = fid[final]["main_tflop"]
    assert main == pytest.approx(trials[final].user_attrs["metrics"]["cost"], rel=0.03)
    spent = sum(trials[c].user_attrs["proxy_tflops"] for c in chain)
    assert main < spent < 1.3 * main
    assert "of it the selected recipe's full run (`apply` reuses it)" in r.stdout

    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "apply", str(cfg)], capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"reusing trial {final}'s full run" in r.stdout
    # The continued chain is the uninterrupted run: trained afresh, the recipe scores the same.
    recipe_file = tmp_path / "s" / "out" / "recipe.yaml"
    r2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipe_opt",
            "train",
            str(recipe_file),
            "--study",
            str(cfg),
            "--out",
            str(tmp_path / "fresh.json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r2.returncode == 0, r2.stdout + r2.stderr
    import json

    fresh = json.loads((tmp_path / "fresh.json").read_text())
    v = trials[final].values
    assert (fresh["gain"], fresh["forgetting"]) == (pytest.approx(v[0], abs=1e-9), pytest.approx(v[1], abs=1e-9))
