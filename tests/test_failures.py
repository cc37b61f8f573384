"""Failure paths, early stopping and compute budgets, injected into real proxy runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from recipe_opt.config import load_study_config
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.space import load_search_space
from recipe_opt.study import ATTR_FAILURE, ATTR_PROXY_TFLOPS, ATTR_RUNGS, StudyRunner, TrialSummary
from recipe_opt.train import TrialDiverged, state_checksum
from tests.conftest import write_study

pytestmark = pytest.mark.integration

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def recipe(lr: float = 3e-3, steps: int = 200, replay: float = 0.3) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
        Replay(replay),
        Schedule(lr, 0.0, "constant_with_warmup"),
        Adapter(8, 2.0, ALL),
        Budget(steps, 16),
    )


def runner_for(cfg_path: Path, reporter: Any = None) -> StudyRunner:
    cfg = load_study_config(cfg_path)
    return StudyRunner(cfg, load_search_space(cfg.search_space_path, list(cfg.sources.new)), reporter)


def test_nan_loss_is_pruned_with_reason(tiny_world: Path, tmp_path: Path) -> None:
    # A real fault: a copy of v0 whose final norm weights are NaN, so the very first loss is NaN.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_world, broken)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(broken / "models" / "v0")
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(broken / "models" / "v0")
    runner = runner_for(write_study(tmp_path / "s", broken, name="nan", n_trials=2))
    study = runner.run()
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert study.trials[0].user_attrs[ATTR_FAILURE] == "diverged: loss became nan at step 1"
    assert study.trials[0].user_attrs[ATTR_PROXY_TFLOPS] > 0


def test_exploding_loss_is_stopped_at_once(tiny_world: Path, tmp_path: Path) -> None:
    runner = runner_for(write_study(tmp_path, tiny_world, name="boom", n_trials=1))
    runner.build()
    runner.trainer.settings = type(runner.trainer.settings)(
        **{**runner.trainer.settings.__dict__, "explode_factor": 1.5}
    )
    before = state_checksum(runner.base.model)
    with (
        pytest.raises(TrialDiverged, match=r"loss exploded at step \d+: .* > 1.5 x first loss") as info,
        runner.trainer.train(recipe(lr=0.5, steps=400, replay=0.0)),
    ):
        pass
    assert info.value.result.proxy_steps < 40  # stopped at once, not at the end
    assert state_checksum(runner.base.model) == before


class _OOMAt:
    """A reporter that raises the given error at step 3 of trial 1: an allocation failure mid-step."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.trial = -1
        self.finished: list[TrialSummary] = []

    def phase(self, message: str) -> None:
        pass

    def trial_started(self, number: int, recipe: Recipe, proxy_steps: int) -> None:
        self.trial = number

    def step(self, done: int, total: int, loss: float) -> None:
        if self.trial == 1 and done == 3:
            raise self.error

    def trial_finished(self, summary: TrialSummary) -> None:
        self.finished.append(summary)


@pytest.mark.parametrize(
    "error",
    [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), MemoryError("cannot allocate")],
    ids=["cuda-oom", "cpu-oom"],
)
def test_out_of_memory_fails_the_trial_not_the_study(tiny_world: Path, tmp_path: Path, error: BaseException) -> None:
    reporter = _OOMAt(error)
    runner = runner_for(write_study(tmp_path, tiny_world, name="oom", n_trials=3), reporter)
    study = runner.run()
    states = [t.state.name for t in study.trials]
    # The failure does not count towards the budget: a fourth trial brings the study to 3 finished.
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert runner.outcome.failed == 1 and runner.outcome.stopped == "budget"
    reason = study.trials[1].user_attrs[ATTR_FAILURE]
    assert reason.startswith(type(error).__name__) and str(error) in reason
    assert state_checksum(runner.base.model) == runner.base_checksum  # the adapter was unloaded


def test_a_target_module_the_model_lacks_stops_the_search_up_front(tiny_world: Path, tmp_path: Path) -> None:
    # A GPT-2 module name on a Llama model: found when the space is resolved against the model,
    # before the study exists (it used to fail half the trials one by one).
    space = (Path(__file__).resolve().parents[1] / "search_spaces" / "default.yaml").read_text()
    space = space.replace("choices: [attention, all_linear]", "choices: [attention, gpt2_style]")
    space = space.replace("  all_linear: [all-linear]", "  gpt2_style: [c_attn]\n  all_linear: [all-linear]")
    cfg = write_study(tmp_path, tiny_world, name="fails", n_trials=6, space=space)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = subprocess.run([sys.executable, "-m", "recipe_opt", "search", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), r.stderr
    assert "target_module_sets.gpt2_style: target module 'c_attn' is not a linear layer of the llama model" in errors[0]
    assert "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no database, no report


def test_rung_early_stopping_prunes_dominated_trials(tiny_world: Path, tmp_path: Path) -> None:
    extra = "early_stopping: {enabled: true, rungs: [0.25, 0.5], min_trials_at_rung: 1, min_dominating: 1}"
    cfg = write_study(tmp_path, tiny_world, name="rungs", n_trials=4, extra=extra)
    runner = runner_for(cfg)
    runner.build()
    space = runner.space  # resolved against the model: concrete target modules
    study = optuna.create_study(
        study_name="rungs",
        storage=f"sqlite:///{tmp_path / 'demo.db'}",
        directions=["maximize", "minimize", "minimize"],
    )
    good = space.params_for(
        Recipe(
            Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
            Replay(0.3),
            Schedule(2.4e-3, 0.1, "cosine"),
            Adapter(8, 2.0, ALL),
            Budget(400, 32),
        )
    )
    # Same recipe, but rank 64 (more cost), LR 2e-2 and no replay (it forgets): dominated at the rungs.
    bad = {**good, "lora_rank": 64, "peak_lr": 0.02, "replay_ratio": 0.0, "steps": 800}
    for params in (good, bad, good, bad):
        study.enqueue_trial(params)
    del study
    result = runner.run()
    states = [t.state.name for t in result.trials]
    assert states[0] == "COMPLETE" and states[1] == "PRUNED" and states[3] == "PRUNED", states
    for t in (result.trials[1], result.trials[3]):
        assert t.user_attrs[ATTR_FAILURE].startswith("stopped early: dominated by")
        rungs = t.user_attrs[ATTR_RUNGS]
        assert set(rungs) <= {"0.25", "0.5"} and rungs
        # It stopped at a rung, so its compute is a fraction of a full proxy of the same recipe.
        full = result.trials[0].user_attrs[ATTR_PROXY_TFLOPS] * 2 * 64 / 8  # steps x2, rank x8 (upper bound)
        assert t.user_attrs[ATTR_PROXY_TFLOPS] < 0.6 * full
    assert "0.25" in result.trials[0].user_attrs[ATTR_RUNGS]  # complete trials keep their rung values


def test_max_cost_stops_the_study(tiny_world: Path, tmp_path: Path) -> None:
    # 0.06 TFLOP holds the costliest single trial (0.052 projected) but not twenty trials of ~0.02.
    cfg = write_study(tmp_path, tiny_world, name="budget", n_trials=20)
    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg), "--max-cost", "0.06"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    study = optuna.load_study(study_name="budget", storage=f"sqlite:///{tmp_path / 'demo.db'}")
    assert len(study.trials) < 20
    assert "reached max cost 0.06: stopping" in r.stdout


def test_informed_design_runs_first(tiny_world: Path, tmp_path: Path) -> None:
    cfg = write_study(tmp_path, tiny_world, name="design", n_trials=2, sampler="{name: gp, initial_design: informed}")
    runner = runner_for(cfg)
    study = runner.run()
    space = runner.space  # the target-module markers resolved against the model, as the run used them
    design = space.informed_design()
    ran = [t.user_attrs["recipe_hash"] for t in study.trials if t.state.name == "COMPLETE"]
    assert ran == [space.sample(optuna.trial.FixedTrial(p)).content_hash for p in design[:2]]
    assert study.trials[0].user_attrs["origin"] == "informed initial design"
