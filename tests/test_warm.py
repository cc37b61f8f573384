"""Warm start: recipes carried into a new search space, plans from a real Optuna storage, and
prior observations that inform the sampler but are never selected or counted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from recipe_opt.config import load_study_config
from recipe_opt.exceptions import StudyError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.space import load_search_space
from recipe_opt.study import pareto_front, plan_warm_start, select_recipe
from tests.conftest import REPO, write_study

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def cycle1_recipe(**kw: object) -> Recipe:
    r = Recipe(
        Mixture.from_mapping({"mul": 0.7, "add_text": 0.3}),
        Replay(0.3),
        Schedule(3e-3, 0.05, "cosine"),
        Adapter(16, 2.0, ALL_LINEAR),
        Budget(550, 32),
    )
    return replace(r, **kw)  # type: ignore[arg-type]


def space(sources: list[str], text: str | None = None, tmp: Path | None = None):  # type: ignore[no-untyped-def]
    path = REPO / "search_spaces" / "default.yaml"
    if text is not None and tmp is not None:
        path = tmp / "space.yaml"
        path.write_text(text)
    loaded = load_search_space(path, sources)
    if text is None:  # the shipped space's markers, as the runner resolves them on a Llama model
        loaded = loaded.with_target_sets({"attention": list(ALL_LINEAR[:4]), "all_linear": list(ALL_LINEAR)})
    return loaded


def test_transfer_clips_and_drops_with_a_note_each() -> None:
    s = space(["max", "mul_text"])
    odd = cycle1_recipe(replay=Replay(0.7), schedule=Schedule(5e-2, 0.05, "polynomial"), budget=Budget(333, 32))
    params, notes = s.transfer(odd)
    assert params["replay_ratio"] == 0.5 and params["peak_lr"] == 2e-2  # clipped into range
    assert params["steps"] == 350  # onto the step-50 grid
    assert "schedule" not in params and params["mix.max"] == 0.5  # other sources: equal weights
    text = "\n".join(notes)
    assert "replay_ratio clipped from 0.7 to 0.5" in text and "mixture set to equal weights" in text
    assert "schedule dropped: 'polynomial'" in text
    # What the space holds exactly carries over unchanged, and maps back to the same recipe.
    same = space(["mul", "add_text"])
    params, notes = same.transfer(cycle1_recipe())
    assert notes == [] and params == same.params_for(cycle1_recipe())


def _source_study(
    cfg_path: Path, n: int, *, schedule: Schedule | None = None, steps: int | None = None
) -> optuna.Study:
    """A finished cycle-1 study in the config's storage, as `search` + `select` leave it."""
    cfg = load_study_config(cfg_path, check_paths=False)
    s = space(["mul", "add_text"])
    study = optuna.create_study(study_name="cycle-1", storage=cfg.storage_url, directions=cfg.directions())
    study.set_user_attr("objectives", cfg.objectives)
    for i in range(n):
        recipe = cycle1_recipe(replay=Replay(0.1 + 0.05 * i), budget=Budget(steps or 200 + 100 * i, 32))
        if schedule is not None:
            recipe = replace(recipe, schedule=schedule)
        values = {"gain": 0.3 + 0.05 * i, "forgetting": 0.05 - 0.002 * i, "cost": 0.1 + 0.05 * i}
        study.add_trial(
            optuna.trial.create_trial(
                params=s.params_for(recipe),
                distributions={k: v for k, v in _dists(s, recipe).items()},
                values=[values[o] for o in cfg.objectives],
                user_attrs={"recipe": recipe.to_dict(), "metrics": values},
            )
        )
    study.set_user_attr("selection", {"trial_number": 2})
    return study


def _dists(s, recipe):  # type: ignore[no-untyped-def]
    from recipe_opt.study._warm import _Recorder

    rec = _Recorder(s.params_for(recipe))
    s.sample(rec)
    return rec.distributions


def test_plan_from_a_named_study_selected_first_then_the_front(tmp_path: Path) -> None:
    cfg_path = write_study(tmp_path, tmp_path / "world", name="cycle-2")
    cfg = load_study_config(cfg_path, check_paths=False)
    _source_study(cfg_path, 6)
    new_space = space(["mul", "add_text"])
    with LineageStore(cfg.storage_url) as store:
        plan = plan_warm_start(cfg, new_space, ["cycle-1"], store=store, max_recipes=3, priors=True)
        cold = plan_warm_start(cfg, new_space, ["auto"], store=store)
    origins = [o for _, o in plan.enqueue]
    assert origins[0] == "warm start: cycle-1 trial 2 (selected)" and len(origins) == 3
    assert {"trial 0 (Pareto)", "trial 5 (Pareto)"} <= {o.split("cycle-1 ")[1] for o in origins[1:]}  # both ends
    assert len(plan.priors) == 6 and all(t.user_attrs["origin"].startswith("prior") for t in plan.priors)
    assert cold.enqueue == [] and "cold start" in cold.notes[0]

    # Priors join the new study, but neither count nor compete: a prior that dominates
    # everything is not on the front, and the selection comes from this cycle's trials.
    study = optuna.create_study(study_name="cycle-2", storage=cfg.storage_url, directions=cfg.directions())
    study.add_trials(plan.priors)
    mine = study.ask({"replay_ratio": optuna.distributions.FloatDistribution(0, 0.5)})
    mine.set_user_attr("metrics", {"gain": 0.1, "forgetting": 0.04, "cost": 0.3})
    mine.set_user_attr("recipe", cycle1_recipe().to_dict())
    study.tell(mine, [0.1, 0.04, 0.3])
    assert [t.number for t in pareto_front(study)] == [mine.number]
    assert select_recipe(study, cfg).trial_number == mine.number


def test_missing_or_incompatible_sources_are_errors(tmp_path: Path) -> None:
    cfg_path = write_study(tmp_path, tmp_path / "world", name="cycle-2")
    cfg = load_study_config(cfg_path, check_paths=False)
    _source_study(cfg_path, 3)
    pinned = "\n".join(
        [
            "mixture: {fixed: {mul: 0.5, add_text: 0.5}}",
            *(
                f"{k}: {v}"
                for k, v in {
                    "replay_ratio": 0.0,
                    "peak_lr": 1.0e-4,
                    "warmup_fraction": 0.0,
                    "schedule": "linear",
                    "weight_decay": 0.0,
                    "lora_rank": 4,
                    "lora_alpha_ratio": 1.0,
                    "lora_dropout": 0.0,
                    "target_modules": "attention",
                    "steps": 100,
                    "batch_size": 8,
                }.items()
            ),
            "target_module_sets: {attention: [q_proj, v_proj]}",
        ]
    )
    with LineageStore(cfg.storage_url) as store:
        with pytest.raises(StudyError, match=r"no such study .*\(studies there: cycle-1\)"):
            plan_warm_start(cfg, space(["mul", "add_text"]), ["cycle-0"], store=store)
        with pytest.raises(StudyError, match="incompatible"):
            plan_warm_start(cfg, space(["mul", "add_text"], pinned, tmp_path), ["cycle-1"], store=store)


def test_without_priors_hides_prior_observations_from_the_sampler() -> None:
    from recipe_opt.study._fallback import WithoutPriors

    seen: list[int] = []

    class Spy(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, dist):  # type: ignore[no-untyped-def]
            seen.append(len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))))
            return super().sample_independent(study, trial, name, dist)

    dist = optuna.distributions.FloatDistribution(0, 1)
    for wrap, expected in ((False, 3), (True, 1)):
        seen.clear()
        sampler: optuna.samplers.BaseSampler = Spy(seed=0)
        study = optuna.create_study(sampler=WithoutPriors(sampler) if wrap else sampler)
        for i, origin in enumerate(["prior: cycle-1 trial 0", "prior: cycle-1 trial 1", "warm start: x"]):
            study.add_trial(
                optuna.trial.create_trial(params={"x": 0.1 * i}, distributions={"x": dist}, value=float(i),
                                          user_attrs={"origin": origin})
            )  # fmt: skip
        study.ask().suggest_float("x", 0, 1)
        assert seen == [expected]  # wrapped: the two priors are not there for the sampler


def test_warm_check_decides_on_the_best_in_gate_gain_of_each_side(tmp_path: Path) -> None:
    from recipe_opt.study import StudyRecord
    from recipe_opt.study._fallback import ROLE_CONTROL, ROLE_WARM, decide_warm_check

    cfg = load_study_config(
        write_study(tmp_path, tmp_path / "world", gates="{max_forgetting: 0.05}"), check_paths=False
    )
    study = optuna.create_study(directions=cfg.directions())
    study.set_user_attr("config", cfg.model_dump(mode="json"))
    rows = [(0.40, 0.20), (0.30, 0.01), (0.35, 0.02), (0.50, 0.30)]  # (gain, forgetting); the last fails
    for gain, forgetting in rows:
        t = study.ask()
        t.set_user_attr("metrics", {"gain": gain, "forgetting": forgetting, "cost": 0.1})
        study.tell(t, [{"gain": gain, "forgetting": forgetting, "cost": 0.1}[o] for o in cfg.objectives])
    record = StudyRecord.read(study)
    # Warm trials 0 and 1 (trial 0 misses the forgetting gate): best in the gates 0.30; control 2: 0.35.
    check = decide_warm_check(record, {0: ROLE_WARM, 1: ROLE_WARM, 2: ROLE_CONTROL, 3: ROLE_CONTROL})
    assert (check.warm_best, check.control_best, check.fallback) == (0.30, 0.35, True)
    assert "falling back to the cold design" in check.line()
    check = decide_warm_check(record, {0: ROLE_WARM, 2: ROLE_WARM, 1: ROLE_CONTROL})
    assert (check.warm_best, check.control_best, check.fallback) == (0.35, 0.30, False)
    check = decide_warm_check(record, {3: ROLE_CONTROL, 2: ROLE_WARM})  # no control in the gates
    assert (check.control_best, check.fallback) == (None, False)


@pytest.mark.integration
def test_a_warm_start_that_does_worse_than_its_control_falls_back_to_the_cold_design(
    tiny_world: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    cfg_path = write_study(
        tmp_path,
        tiny_world,
        name="cycle-2",
        n_trials=9,  # 2 warm recipes + 6 informed-design control recipes (the free slots), then one more
        sampler="{name: gp, n_startup_trials: 8}",
        gates="{max_forgetting: 1.0, max_new_task_drop: null, min_gain: -1.0}",
        extra="warm_start: {studies: [cycle-1], max_recipes: 2, control: 1, priors: true}",
    )
    # A parent cycle whose recipes barely train (the space's lowest LR, its shortest update): on
    # this cycle they gain less than the informed design's centre does.
    source = _source_study(cfg_path, 3, schedule=Schedule(1e-4, 0.05, "cosine"), steps=200)
    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg_path)], capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 informed-design recipes run beside it as a control" in r.stdout
    study = optuna.load_study(study_name="cycle-2", storage=load_study_config(cfg_path).storage_url)
    own = sorted(
        (t for t in study.trials if t.state.is_finished() and not t.user_attrs["origin"].startswith("prior")),
        key=lambda t: t.number,
    )
    roles = [t.user_attrs.get("seed_role") for t in own]
    assert roles == ["warm"] * 2 + ["control"] * 6 + [None]
    gains = [t.user_attrs["metrics"]["gain"] for t in own]
    check = study.user_attrs["warm_check"]
    assert check["decided"] and check["warm_best"] == max(gains[:2]) and check["control_best"] == max(gains[2:8])
    assert check["control_best"] > check["warm_best"] and check["fallback"]
    assert "warm-start check:" in r.stdout and "falling back to the cold design" in r.stdout
    # The ninth trial is the design's next recipe (the seventh), not a model proposal
    # fitted on the priors.
    assert own[8].user_attrs["origin"] == "mixed initial design (warm-start fallback)"  # the default: `auto`
    assert len(source.trials) == 3
