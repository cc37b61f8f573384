"""One trial: sample a `Recipe`, proxy-train it, score it, set its gates as constraints.

Rung-based early stopping across objectives (MOASHA-style: Optuna's pruners refuse multi-
objective studies) lives here too: at each rung the adapter is scored and the trial stops if
enough peers that reached the same rung dominate it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation, Outcome
from recipe_opt.exceptions import TrainingError, first_line
from recipe_opt.recipe import Recipe
from recipe_opt.registry import objective_values
from recipe_opt.space import SearchSpace
from recipe_opt.study._attrs import (
    ATTR_FIDELITY,
    ATTR_METRICS,
    ATTR_PROXY_TFLOPS,
    ATTR_RECIPE,
    ATTR_RECIPE_HASH,
    ATTR_RUNGS,
    ATTR_SUMMARY,
    set_failure,
)
from recipe_opt.study._gates import Scored, check_gates, constraints
from recipe_opt.study._ladder import LadderPlan, Rung
from recipe_opt.study._progress import Reporter, TrialSummary
from recipe_opt.study._records import dominates, new_task_scores
from recipe_opt.study._setup import Setup
from recipe_opt.train import (
    EarlyStop,
    Fidelity,
    ProxyTrainer,
    RungFn,
    TrainResult,
    TrainState,
    TrialInterrupted,
    TrialStopped,
)

__all__ = ["Measurement", "Objective"]


@dataclass(frozen=True)
class _Inputs:
    """What the objectives are computed from (`recipe_opt.registry.ObjectiveInputs`)."""

    gain: float
    forgetting: float
    cost_tflops: float


@dataclass
class Measurement:
    """One run of one recipe: objective values, what the gates read, all metrics."""

    values: dict[str, float]
    forgetting_per_suite: dict[str, float]
    metrics: dict[str, Any]
    result: TrainResult
    new_task_scores: dict[str, tuple[float, float]]

    @classmethod
    def of(
        cls,
        outcome: Outcome,
        before: Evaluation,
        after: Evaluation,
        result: TrainResult,
        cost_tflops: float,
        new: tuple[str, ...],
    ) -> Measurement:
        values = objective_values(_Inputs(outcome.gain, outcome.forgetting, cost_tflops))
        scores = new_task_scores(before.tasks, after.tasks, new)
        metrics = {
            **values,
            "forgetting_per_suite": dict(outcome.forgetting_per_suite),
            "suites_after": dict(after.suites),
            "tasks_after": {k: dict(v) for k, v in after.tasks.items()},
            "eval_seconds": round(after.seconds, 4),
            "train": result.as_metrics(),
        }
        return cls(values, dict(outcome.forgetting_per_suite), metrics, result, scores)

    def scored(self) -> Scored:
        return Scored(self.values, self.forgetting_per_suite, self.new_task_scores, self.result.proxy_flops / 1e12)


class Objective:
    """The Optuna objective of a study: `objective(trial)` returns its objective values."""

    def __init__(
        self,
        cfg: StudyConfig,
        space: SearchSpace,
        setup: Setup,
        reporter: Reporter,
        base_eval: Evaluation,
        rung_base: Evaluation,
        ladder: LadderPlan | None = None,
    ) -> None:
        self.cfg = cfg
        self.space = space
        self.setup = setup
        self.reporter = reporter
        self.base_eval = base_eval
        self.rung_base = rung_base
        self.ladder = ladder  # a budgeted search: each trial runs at its rung's fidelity

    def measure(self, recipe: Recipe, *, rungs: Mapping[int, RungFn] | None = None) -> Measurement:
        """Train `recipe` by proxy, evaluate it, and derive its objective values (no Optuna)."""
        s = self.setup
        with s.trainer.train(recipe, progress=self.reporter.step, rungs=rungs) as (model, result):
            after = s.evaluator.evaluate(model)
        outcome = s.evaluator.outcome(self.base_eval, after)
        new = s.evaluator.new_suite.tasks
        return Measurement.of(outcome, self.base_eval, after, result, result.full_update_flops / 1e12, new)

    def measure_at(
        self, recipe: Recipe, rung: Rung, resume: TrainState | None = None
    ) -> tuple[Measurement, TrainState | None]:
        """Train `recipe` at a ladder rung's fidelity (continuing `resume`), score it; no Optuna."""
        s = self.setup
        steps = recipe.budget.steps
        fidelity: Fidelity | None = None
        if rung.kind == "compressed":
            batch = self.cfg.multi_fidelity.screen_batch(s.trainer.settings.batch_size)
            settings = replace(s.trainer.settings, fraction=rung.share, batch_size=batch, min_steps=1)
            trainer = ProxyTrainer(s.base, s.trainer.data, settings)
        else:
            trainer = s.full_trainer(recipe)  # the full update's batch: its prefix, continued, *is* it
            stop = steps if rung.full else min(steps, max(1, round(rung.share * steps)))
            fidelity = Fidelity(stop=stop, horizon=steps, anneal=round(rung.anneal * steps))
        with trainer.train(recipe, progress=self.reporter.step, fidelity=fidelity, resume=resume) as (model, result):
            after = s.evaluator.evaluate(model)
        outcome = s.evaluator.outcome(self.base_eval, after)
        m = Measurement.of(
            outcome, self.base_eval, after, result, result.full_update_flops / 1e12, s.evaluator.new_suite.tasks
        )
        return m, result.state

    def _rung_of(self, trial: optuna.Trial) -> tuple[Rung, dict[str, Any]] | None:
        if self.ladder is None:
            return None
        attr = dict(trial.user_attrs.get(ATTR_FIDELITY) or {"rung": 0})
        return self.ladder.rungs[int(attr["rung"])], attr

    def _resume(self, trial: optuna.Trial, attr: dict[str, Any]) -> TrainState | None:
        parent = attr.get("continues")
        if parent is None:
            return None
        frozen = next((t for t in trial.study.get_trials(deepcopy=False) if t.number == int(parent)), None)
        path = ((frozen.user_attrs.get(ATTR_FIDELITY) or {}).get("state") if frozen is not None else None) or ""
        if not path:
            return None  # a compressed screen: nothing to continue, the rung starts afresh
        if not Path(path).is_file():
            raise TrainingError(f"the saved state of trial {parent} ({path}) is gone: cannot continue it")
        return TrainState.load(path)

    def _run_rung(self, trial: optuna.Trial, recipe: Recipe, rung: Rung, attr: dict[str, Any]) -> Measurement:
        m, state = self.measure_at(recipe, rung, self._resume(trial, attr))
        record: dict[str, Any] = {
            **attr,
            "rung": rung.index,
            "kind": rung.kind,
            "share": rung.share,
            "anneal": rung.anneal,
            "full": rung.full,
        }
        if state is not None:
            path = self.cfg.output_path / "states" / f"trial-{trial.number}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            state.save(path)
            per_token = m.result.proxy_flops / m.result.tokens_seen if m.result.tokens_seen else 0.0
            record.update({"state": str(path), "step": state.step, "main_tflop": state.tokens * per_token / 1e12})
        trial.set_user_attr(ATTR_FIDELITY, record)
        return m

    def __call__(self, trial: optuna.Trial) -> list[float]:
        start = time.perf_counter()
        recipe = self.space.sample(trial, seed=self.cfg.seed).with_stamp()
        # The sampler works at the first `suggest_*`, so this is its time (GP fit included).
        sampling_seconds = time.perf_counter() - start
        trial.set_user_attr(ATTR_RECIPE, recipe.to_dict())
        trial.set_user_attr(ATTR_RECIPE_HASH, recipe.content_hash)
        trial.set_user_attr(ATTR_SUMMARY, recipe.summary())
        at = self._rung_of(trial)
        steps = (
            self.setup.trainer.settings.proxy_steps(recipe) if at is None else round(at[0].share * recipe.budget.steps)
        )
        self.reporter.trial_started(trial.number, recipe, steps)
        try:
            if at is None:
                m = self.measure(recipe, rungs=self._rung_callbacks(trial, recipe))
            else:
                m = self._run_rung(trial, recipe, *at)
        except TrialInterrupted as exc:
            # Diverged or stopped at a rung: pruned, with the reason and the compute it used.
            kind = "stopped early" if isinstance(exc, TrialStopped) else "diverged"
            set_failure(trial, kind, f"{kind}: {exc.reason}")
            trial.set_user_attr(ATTR_PROXY_TFLOPS, exc.result.proxy_flops / 1e12)
            self._finish(trial.number, "PRUNED", {}, recipe, start, f"{kind}: {exc.reason}")
            raise optuna.TrialPruned(f"{kind}: {exc.reason}") from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {first_line(exc) if str(exc) else ''}"
            set_failure(trial, "error", reason)
            self._finish(trial.number, "FAIL", {}, recipe, start, reason)
            raise
        suites = [s.name for s in self.cfg.evaluation.retention]
        for key, value in constraints(check_gates(self.cfg.gates, m.scored(), suites=suites)).items():
            trial.set_constraint(key, value)
        m.metrics["sampling_seconds"] = round(sampling_seconds, 4)
        m.metrics["trial_seconds"] = round(time.perf_counter() - start, 3)
        trial.set_user_attr(ATTR_METRICS, m.metrics)
        trial.set_user_attr(ATTR_PROXY_TFLOPS, m.result.proxy_flops / 1e12)
        self._finish(trial.number, "COMPLETE", m.values, recipe, start)
        return [m.values[o] for o in self.cfg.objectives]

    # ---- rung-based early stopping -------------------------------------------------------------
    def _rung_callbacks(self, trial: optuna.Trial, recipe: Recipe) -> dict[int, RungFn]:
        es = self.cfg.early_stopping
        if not es.enabled:
            return {}
        steps = self.setup.trainer.settings.proxy_steps(recipe)
        callbacks: dict[int, RungFn] = {}
        for fraction in es.rungs:
            step = max(1, round(fraction * steps))
            if step < steps:
                callbacks[step] = self._make_rung(trial, f"{fraction:g}")
        return callbacks

    def _make_rung(self, trial: optuna.Trial, key: str) -> RungFn:
        evaluator = self.setup.rung_evaluator

        def at_rung(step: int, model: Any, partial: TrainResult) -> None:
            outcome = evaluator.outcome(self.rung_base, evaluator.evaluate(model))
            values = objective_values(_Inputs(outcome.gain, outcome.forgetting, partial.full_update_flops / 1e12))
            rungs = dict(trial.user_attrs.get(ATTR_RUNGS, {}))
            rungs[key] = {**values, "step": step}
            trial.set_user_attr(ATTR_RUNGS, rungs)
            peers = [
                t.user_attrs[ATTR_RUNGS][key]
                for t in trial.study.get_trials(deepcopy=False)
                if t.number != trial.number and key in t.user_attrs.get(ATTR_RUNGS, {})
            ]
            es = self.cfg.early_stopping
            if len(peers) < es.min_trials_at_rung:
                return
            dominating = sum(dominates(p, values, self.cfg.objectives) for p in peers)
            if dominating >= es.min_dominating:
                raise EarlyStop(
                    f"dominated by {dominating} of {len(peers)} trials at rung {key} (step {step}: gain "
                    f"{values['gain']:+.3f}, forgetting {values['forgetting']:+.3f})"
                )

        return at_rung

    def _finish(
        self, number: int, state: str, values: dict[str, float], recipe: Recipe, start: float, reason: str | None = None
    ) -> None:
        self.reporter.trial_finished(TrialSummary(number, state, values, recipe, time.perf_counter() - start, reason))
