"""`apply`: the selected recipe trained at full fidelity, judged by the release gates, registered.

    selected trial's recipe -> full run (every step, recipe batch size) -> LoRA adapter saved
    -> merged into a fresh copy of the base -> checkpoint `<weights_dir>/<version>/`
    -> the parent (study base) and the new checkpoint scored on every suite, every item
    -> release checks -> lineage: version (released or rejected), scores, proxy-vs-full, decision

The checkpoint is written to `<version>.partial/` and renamed only when complete, and the
lineage rows are one transaction: a failure leaves neither a version directory nor a row.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation, SuiteEvaluator
from recipe_opt.exceptions import StudyError
from recipe_opt.lineage import LineageStore, SuiteScore, VersionInfo
from recipe_opt.recipe import Recipe
from recipe_opt.study._gates import GateCheck, Scored, check_gates, failed_reason
from recipe_opt.study._objective import Measurement
from recipe_opt.study._records import StudyRecord
from recipe_opt.study._runner import StudyRunner
from recipe_opt.study._select import weights_fingerprint
from recipe_opt.study._setup import Setup

__all__ = ["ApplyResult", "FullRun", "apply_selected", "release_checks", "run_full", "suite_scores"]


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


@dataclass(frozen=True)
class ApplyResult:
    version: VersionInfo
    released: bool
    checks: list[GateCheck]  # the gates' own checks (`check_gates`), on the full run
    reasons: list[str]
    proxy: dict[str, Any]
    full: FullRun
    weights_path: Path
    seconds: float


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


def suite_scores(evaluator: SuiteEvaluator, evaluation: Evaluation, backend: str) -> list[SuiteScore]:
    out = []
    for suite in evaluator.suites:
        kind = "new" if suite is evaluator.new_suite else "retention"
        tasks = {t: dict(evaluation.tasks[t]) for t in suite.tasks}
        out.append(SuiteScore(suite.name, kind, float(evaluation.suites[suite.name]), tasks, backend, None))
    return out


def run_full(
    setup: Setup,
    recipe: Recipe,
    evaluator: SuiteEvaluator,
    parent: Evaluation,
    *,
    save_to: Path | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> FullRun:
    """Train `recipe` at full fidelity and score it against `parent` (the base's full scores).

    With `save_to`, the adapter is saved, merged into a fresh copy of the base and the merged
    checkpoint (with tokenizer and adapter) is written there; the scores are those of that
    checkpoint, the artifact a release would ship. Without it the adapted model is scored in place.
    """
    trainer = setup.full_trainer(recipe)
    with trainer.train(recipe, progress=progress) as (model, result):
        if save_to is None:
            after = evaluator.evaluate(model)
        else:
            model.save_pretrained(save_to / "adapter")
    if save_to is not None:
        merged = _merge(setup, save_to)
        after = evaluator.evaluate(merged)
        del merged
    outcome = evaluator.outcome(parent, after)
    # At full fidelity the cost is measured, not projected: the FLOPs the run actually spent.
    m = Measurement.of(outcome, parent, after, result, result.proxy_flops / 1e12, evaluator.new_suite.tasks)
    return FullRun(m.values, m.forgetting_per_suite, parent, after, result.as_metrics(), m.new_task_scores)


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


def apply_selected(
    cfg: StudyConfig,
    runner: StudyRunner,
    study: optuna.Study,
    *,
    version: str | None = None,
    store: LineageStore | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    phase: Callable[[str], None] = lambda _m: None,
) -> ApplyResult:
    """Train the study's selected recipe at full fidelity, decide its release, register it."""
    start = time.perf_counter()
    record = StudyRecord.read(study)
    trial = record.selected
    if trial is None or trial.recipe is None:
        raise StudyError(f"study {cfg.name!r} has no selected recipe: run `recipe-opt search` or `select` first")
    recipe = trial.recipe
    name = version or cfg.apply_version
    out = cfg.apply_weights_root / name
    if out.exists():
        raise StudyError(f"{out} already exists: apply under another version name (`--version`) or remove it")
    own_store = store is None
    store = store or LineageStore(cfg.storage_url)
    try:
        # Fail before training, not after: the cycle must be recorded and the name free.
        if store.cycle_base(cfg.name) is None:
            raise StudyError(f"study {cfg.name!r} has no update cycle in the lineage: run `recipe-opt select` first")
        if any(v.name == name for v in store.list_versions_or_empty(cfg.family)):
            raise StudyError(f"version {cfg.family}/{name} already exists in the lineage: pass another `--version`")

        setup = runner.setup
        runner.hold_database("apply")
        phase(f"scoring the parent {cfg.base_version} on every suite, every item")
        evaluator = setup.make_evaluator(cfg.evaluation.backend, None)
        parent_eval = evaluator.evaluate(setup.base.model)
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        try:
            phase(
                f"training {recipe.short_hash} at full fidelity: {recipe.budget.steps} steps of "
                f"batch {recipe.budget.batch_size}"
            )
            full = run_full(setup, recipe, evaluator, parent_eval, save_to=partial, progress=progress)
            recipe.save(partial / "recipe.yaml")
            checks = release_checks(cfg, full.values, full.forgetting_per_suite, cfg.base_version, full.new_task_scores)
            released = all(c.passed for c in checks)
            reasons = [failed_reason(c) for c in checks if not c.passed]
            partial.rename(out)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        proxy = {**trial.values, "forgetting_per_suite": trial.forgetting_per_suite}
        try:
            info = store.record_apply(
                study_name=cfg.name,
                name=name,
                weights_uri=str(out),
                weights_checksum=weights_fingerprint(out),
                tier=cfg.apply.tier,
                recipe=recipe,
                trial_number=trial.number,
                released=released,
                checks=[c.to_dict() for c in checks],
                reasons=reasons or ["every release gate passes"],
                metrics={"full": full.as_record(), "proxy": proxy},
                parent_scores=suite_scores(evaluator, parent_eval, cfg.evaluation.backend),
                scores=suite_scores(evaluator, full.after, cfg.evaluation.backend),
                proxy=proxy,
                full=full.as_record(),
            )
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # no row, no directory
            raise
    finally:
        runner.close()
        if own_store:
            store.close()
    return ApplyResult(info, released, checks, reasons, proxy, full, out, time.perf_counter() - start)
