"""Any recipe at full fidelity, judged like the pick: `recipe-opt train`, the baselines `apply`
runs beside the pick, and the oracle benchmark (`bench/oracle.py`) share this one path.

A recipe is trained exactly as `apply` trains it (`run_full`: every step of its budget at its
own batch size, every example), scored on every item of every suite against the study's base
(scored once per `FullFidelity`), and checked by the release gates (`release_checks`, the
search's own `check_gates`). Nothing is registered: no version, no release decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation, SuiteEvaluator
from recipe_opt.exceptions import ConfigError, RecipeOptError, StudyError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Recipe
from recipe_opt.registry import BASELINES, CURRENT
from recipe_opt.study._gates import GateCheck, Scored, check_gates
from recipe_opt.study._objective import Measurement
from recipe_opt.study._runner import StudyRunner
from recipe_opt.study._setup import Setup
from recipe_opt.train import Fidelity, TrainState, flops_per_token, query_value_modules, resolve_target_modules

__all__ = [
    "FullFidelity",
    "FullRun",
    "TrainedRecipe",
    "baseline_recipes",
    "release_checks",
    "run_full",
]


@dataclass(frozen=True)
class FullRun:
    """One recipe at full fidelity: objective values against the parent, and the measurements."""

    values: dict[str, float]
    forgetting_per_suite: dict[str, float]
    parent: Evaluation
    after: Evaluation
    train: dict[str, float]
    new_task_scores: dict[str, tuple[float, float]]

    def scored(self) -> Scored:
        return Scored(self.values, self.forgetting_per_suite, self.new_task_scores)

    def as_record(self) -> dict[str, Any]:
        return {
            **self.values,
            "forgetting_per_suite": self.forgetting_per_suite,
            "suites_after": dict(self.after.suites),
            "tasks_after": {k: dict(v) for k, v in self.after.tasks.items()},
            "train": self.train,
        }


def release_checks(
    cfg: StudyConfig,
    values: Mapping[str, float],
    per_suite: Mapping[str, float],
    parent: str,
    new_task_scores: Mapping[str, tuple[float, float]] | None = None,
) -> list[GateCheck]:
    """The release gates (`check_gates`, the search's own) on full-run values measured against
    the parent version, the cost measured rather than projected."""
    suites = [s.name for s in cfg.evaluation.retention]
    scored = Scored(values, per_suite, new_task_scores or {})
    return check_gates(cfg.gates, scored, against=parent, suites=suites, cost="full-run compute")


def run_full(
    setup: Setup,
    recipe: Recipe,
    evaluator: SuiteEvaluator,
    parent: Evaluation,
    *,
    save_to: Path | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    resume: TrainState | None = None,
) -> FullRun:
    """Train `recipe` at full fidelity and score it against `parent` (the base's full scores).

    With `save_to`, the adapter is saved, merged into a fresh copy of the base and the merged
    checkpoint (with tokenizer and adapter) is written there; the scores are those of that
    checkpoint, the artifact a release would ship. Without it the adapted model is scored in place.
    `resume` continues a saved prefix of this very run (a budgeted search's); a state at the last
    step is the finished run, reused without training. Either way the cost is the whole run's.
    """
    trainer = setup.full_trainer(recipe)
    steps = recipe.budget.steps
    fidelity = None if resume is None else Fidelity(stop=steps, horizon=steps)
    with trainer.train(recipe, progress=progress, fidelity=fidelity, resume=resume) as (model, result):
        if save_to is None:
            after = evaluator.evaluate(model)
        else:
            model.save_pretrained(save_to / "adapter")
    if save_to is not None:
        merged = _merge(setup, save_to)
        after = evaluator.evaluate(merged)
        del merged
    outcome = evaluator.outcome(parent, after)
    # At full fidelity the cost is measured, not projected: the FLOPs the run actually spent,
    # with those of the prefix it continued (4N + 6n per token, over the state's tokens).
    flops = result.proxy_flops
    train = result.as_metrics()
    if resume is not None:
        flops += flops_per_token(result.frozen_params, result.trainable_params) * resume.tokens
        train["resumed_at_step"] = resume.step
    m = Measurement.of(outcome, parent, after, result, flops / 1e12, evaluator.new_suite.tasks)
    return FullRun(m.values, m.forgetting_per_suite, parent, after, train, m.new_task_scores)


def _merge(setup: Setup, out: Path) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        setup.base.path, local_files_only=True, dtype=torch.float32, trust_remote_code=setup.cfg.trust_remote_code
    )
    merged = PeftModel.from_pretrained(base, out / "adapter").merge_and_unload()
    merged.save_pretrained(out)
    setup.base.tokenizer.save_pretrained(out)
    merged.to(setup.device)
    merged.eval()
    return merged


@dataclass(frozen=True)
class TrainedRecipe:
    """One recipe trained and scored at full fidelity, with the release gates' verdict."""

    label: str
    recipe: Recipe
    full: FullRun
    checks: list[GateCheck]
    seconds: float

    @property
    def passes(self) -> bool:
        return all(c.passed for c in self.checks)

    def summary_dict(self) -> dict[str, Any]:
        """What the release record keeps of a baseline: its values and the gates' verdict."""
        return {
            "label": self.label,
            "recipe_hash": self.recipe.content_hash,
            "summary": self.recipe.summary(),
            **self.full.values,
            "forgetting_per_suite": self.full.forgetting_per_suite,
            "new_task_scores": {k: list(s) for k, s in self.full.new_task_scores.items()},
            "passes_gates": self.passes,
            "gates": [c.to_dict() for c in self.checks],
            "seconds": round(self.seconds, 2),
        }

    def to_dict(self) -> dict[str, Any]:
        v = self.full.values
        return {
            "label": self.label,
            "recipe_hash": self.recipe.content_hash,
            "recipe": self.recipe.to_dict(),
            "seed": self.recipe.seed,
            **v,
            "tflop": v["cost"],  # measured: the FLOPs the full run spent
            "seconds": round(self.seconds, 2),
            "forgetting_per_suite": self.full.forgetting_per_suite,
            "new_task_scores": {k: list(s) for k, s in self.full.new_task_scores.items()},
            "suites_after": dict(self.full.after.suites),
            "tasks_after": {k: dict(t) for k, t in self.full.after.tasks.items()},
            "passes_gates": self.passes,
            "gates": [c.to_dict() for c in self.checks],
        }


class FullFidelity:
    """The study's base scored once on every item, and recipes trained and judged against it."""

    def __init__(self, runner: StudyRunner) -> None:
        self.runner = runner
        self.cfg = runner.cfg
        self.evaluator = runner.setup.make_evaluator(self.cfg.evaluation.backend, None)
        self._parent: Evaluation | None = None

    @property
    def parent(self) -> Evaluation:
        if self._parent is None:
            self._parent = self.evaluator.evaluate(self.runner.setup.base.model)
        return self._parent

    def train(
        self,
        recipe: Recipe,
        *,
        label: str = "",
        save_to: Path | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> TrainedRecipe:
        parent = self.parent  # scored before the clock starts: once for every recipe
        start = time.perf_counter()
        full = run_full(self.runner.setup, recipe, self.evaluator, parent, save_to=save_to, progress=progress)
        checks = release_checks(
            self.cfg, full.values, full.forgetting_per_suite, self.cfg.base_version, full.new_task_scores
        )
        return TrainedRecipe(label or recipe.short_hash, recipe, full, checks, time.perf_counter() - start)


def baseline_recipes(
    runner: StudyRunner, names: Sequence[str], pick: Recipe, *, store: LineageStore | None = None
) -> list[tuple[str, Recipe]]:
    """The study's `baselines:` as recipes: `current` (the recipe whose `apply` made the base
    version, from the lineage), a registered default (`recipe_opt.registry.BASELINES`, built on
    the pick's budget and mixture) or a recipe file (relative to the study config's folder). A
    recipe that mixes sources this study does not have takes the pick's mixture."""
    cfg = runner.cfg
    model = runner.setup.base.model
    sets = {
        "all-linear": resolve_target_modules(model, ["all-linear"], where="baselines", model_ref=str(cfg.base_model)),
        "query-value": query_value_modules(model),
    }
    out: list[tuple[str, Recipe]] = []
    for name in names:
        if name == CURRENT:
            own = store is None
            lineage = store or LineageStore(cfg.storage_url)
            try:
                recipe = lineage.producing_recipe(cfg.family, cfg.base_version)
            finally:
                if own:
                    lineage.close()
            if recipe is None:
                raise StudyError(
                    f"baseline `current`: no recipe made {cfg.family}/{cfg.base_version} in the lineage "
                    "(it was registered, not applied): drop `current` from `baselines`"
                )
            out.append((f"current ({cfg.base_version})", recipe))
        elif name in BASELINES:
            entry = BASELINES[name]
            out.append((name, entry.build(pick, sets)))
        else:
            path = cfg.resolve(name)
            try:
                out.append((name, Recipe.load(path)))
            except (OSError, ValueError, TypeError, KeyError, RecipeOptError, yaml.YAMLError) as exc:
                raise ConfigError.single(str(cfg.config_path), "baselines", f"{name}: {exc}") from None
    # A recipe from another cycle mixes that cycle's sources (here they may be replay pools):
    # it keeps its own settings and takes the pick's mixture, as the registered defaults do.
    sources = set(cfg.sources.new)
    return [(label, r if set(r.mixture.as_dict()) <= sources else replace(r, mixture=pick.mixture)) for label, r in out]
