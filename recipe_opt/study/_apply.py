"""`apply`: the selected recipe trained at full fidelity, judged by the release gates, registered.

    selected trial's recipe -> full run (every step, recipe batch size; a budgeted search's
    finalist was trained in full by the search, and its saved run is reused) -> LoRA adapter saved
    -> merged into a fresh copy of the base -> checkpoint `<weights_dir>/<version>/`
    -> the parent (study base) and the new checkpoint scored on every suite, every item
    -> release checks -> the study's `baselines` trained beside it (`_train`), for the reviewer
    -> lineage: version (released or rejected), scores, proxy-vs-full, decision, baselines

The checkpoint is written to `<version>.partial/` and renamed only when complete, and the
lineage rows are one transaction: a failure leaves neither a version directory nor a row.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation, SuiteEvaluator
from recipe_opt.exceptions import StudyError
from recipe_opt.lineage import LineageStore, SuiteScore, VersionInfo
from recipe_opt.study._gates import GateCheck, failed_reason
from recipe_opt.study._records import StudyRecord, TrialRecord
from recipe_opt.study._runner import StudyRunner
from recipe_opt.study._select import weights_fingerprint
from recipe_opt.study._train import FullFidelity, FullRun, TrainedRecipe, baseline_recipes, release_checks, run_full
from recipe_opt.train import TrainState

__all__ = ["ApplyResult", "apply_selected", "reusable_run", "suite_scores"]


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
    baselines: list[TrainedRecipe] = field(default_factory=list)  # the study's `baselines`, at full fidelity


def reusable_run(trial: TrialRecord) -> TrainState | None:
    """The selected trial's full run, when a budgeted search trained it to the end of its
    schedule and its state is still where the trial says (else None: `apply` trains afresh)."""
    path = trial.fidelity.get("state")
    if not trial.full_run or not path or not Path(path).is_file() or trial.recipe is None:
        return None
    state = TrainState.load(path)
    if state.recipe_hash != trial.recipe.content_hash or state.step != trial.recipe.budget.steps:
        return None
    return state


def suite_scores(evaluator: SuiteEvaluator, evaluation: Evaluation, backend: str) -> list[SuiteScore]:
    out = []
    for suite in evaluator.suites:
        kind = "new" if suite is evaluator.new_suite else "retention"
        tasks = {t: dict(evaluation.tasks[t]) for t in suite.tasks}
        out.append(SuiteScore(suite.name, kind, float(evaluation.suites[suite.name]), tasks, backend, None))
    return out


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
        # Found before any training: a `current` the lineage cannot name, a missing recipe file.
        baseline_runs = baseline_recipes(runner, cfg.baselines, recipe, store=store)
        phase(f"scoring the parent {cfg.base_version} on every suite, every item")
        fidelity = FullFidelity(runner)
        evaluator, parent_eval = fidelity.evaluator, fidelity.parent
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        try:
            reused = reusable_run(trial)
            if reused is not None:
                phase(
                    f"reusing trial {trial.number}'s full run of {recipe.short_hash} from the search "
                    f"({recipe.budget.steps} steps of batch {recipe.budget.batch_size}, already trained)"
                )
            else:
                phase(
                    f"training {recipe.short_hash} at full fidelity: {recipe.budget.steps} steps of "
                    f"batch {recipe.budget.batch_size}"
                )
            full = run_full(setup, recipe, evaluator, parent_eval, save_to=partial, progress=progress, resume=reused)
            recipe.save(partial / "recipe.yaml")
            checks = release_checks(cfg, full.values, full.forgetting_per_suite, cfg.base_version, full.new_task_scores)
            released = all(c.passed for c in checks)
            reasons = [failed_reason(c) for c in checks if not c.passed]
            # The baselines beside the pick: each trained as the pick was, against the same parent
            # scores, judged by the same gates. They inform the reviewer; the decision is the pick's.
            baselines = []
            for label, other in baseline_runs:
                phase(f"baseline {label}: training {other.short_hash} at full fidelity ({other.summary()})")
                baselines.append(fidelity.train(other, label=label, progress=progress))
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
                metrics={
                    "full": full.as_record(),
                    "proxy": proxy,
                    "baselines": [b.summary_dict() for b in baselines],
                },
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
    return ApplyResult(info, released, checks, reasons, proxy, full, out, time.perf_counter() - start, baselines)
