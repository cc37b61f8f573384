"""Selection of the recipe to apply, and what it leaves behind: recipe file and lineage rows.

The candidates are the study's feasible Pareto front (`StudyRecord.front`: the gates of
`check_gates`, on each trial's values); a policy of `recipe_opt.registry.POLICIES` ranks them.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation
from recipe_opt.exceptions import StudyError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Recipe
from recipe_opt.registry import POLICIES
from recipe_opt.space import SearchSpace
from recipe_opt.study._attrs import ATTR_SELECTION, ATTR_SPACE
from recipe_opt.study._base import data_manifest, file_sha256
from recipe_opt.study._gates import Scored, check_gates
from recipe_opt.study._price import search_price
from recipe_opt.study._records import StudyRecord, TrialRecord
from recipe_opt.study._storage import set_study_attr_in

__all__ = [
    "Rerunner",
    "SelectedRecipe",
    "pareto_front",
    "policy_scores",
    "record_selection",
    "select_and_record",
    "select_recipe",
    "weights_fingerprint",
]


class Rerunner(Protocol):
    """What selection needs to re-run a candidate with another seed (`StudyRunner` is one)."""

    def rerun(self, recipe: Recipe, seed: int, base: Evaluation) -> Scored: ...


@dataclass(frozen=True)
class SelectedRecipe:
    trial_number: int
    recipe: Recipe
    values: dict[str, float]
    rule: str
    reason: str
    policy: str
    metrics: dict[str, Any]
    reruns: dict[str, Any] | None = None
    gates: dict[str, Any] | None = None  # the gates the choice was made under


def pareto_front(study: optuna.Study | StudyRecord) -> list[TrialRecord]:
    """The feasible Pareto front of a study (see `StudyRecord.front`)."""
    return (study if isinstance(study, StudyRecord) else StudyRecord.read(study)).front


def policy_scores(
    rows: list[dict[str, float]], objectives: list[str], policy: str, weights: dict[str, float]
) -> list[float]:
    """Score of each candidate under `policy` (higher is better)."""
    try:
        entry = POLICIES[policy]
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    return entry.score(rows, objectives, weights)


def select_recipe(
    study: optuna.Study,
    cfg: StudyConfig,
    *,
    policy: str | None = None,
    weights: dict[str, float] | None = None,
    rerunner: Rerunner | None = None,
    reruns: int | None = None,
    top_k: int | None = None,
) -> SelectedRecipe:
    """Pick the recipe to apply from the feasible Pareto front under a policy and `cfg.gates`.

    With `reruns > 0` and a `rerunner`, the policy's top `top_k` candidates are trained again
    with `reruns` extra seeds and the choice is made on the means, gates included; the record
    keeps every candidate's mean and spread.
    """
    policy = policy or cfg.selection.policy
    weights = weights or cfg.selection.weights
    reruns = cfg.selection.reruns if reruns is None else reruns
    top_k = top_k or cfg.selection.top_k
    record = StudyRecord.read(study, gates=cfg.gates)
    complete = record.complete
    front = record.front
    if not front:
        n_feasible = sum(record.feasible(t) for t in complete)
        raise StudyError(
            f"no recipe passes the release gates ({len(complete)} complete trials, {n_feasible} feasible): "
            "loosen `gates` or search longer; nothing was selected"
        )
    objectives: list[str] = list(cfg.objectives)
    rows = [t.values for t in front]
    scores = policy_scores(rows, objectives, policy, weights)
    order = sorted(range(len(front)), key=lambda i: _rank_key(scores, rows, front, i))
    best = order[0]
    rule = POLICIES[policy].rule + (f" (weights {weights})" if POLICIES[policy].weighted else "")
    reason = (
        f"{len(front)} of {len(complete)} complete trials are feasible and Pareto-optimal; under `{policy}` "
        f"trial {front[best].number} ranks first (gain {rows[best]['gain']:+.3f}, forgetting "
        f"{rows[best]['forgetting']:+.3f}, cost {rows[best].get('cost', math.nan):.3g} TFLOP)"
    )
    rerun_record: dict[str, Any] | None = None
    if reruns and rerunner is not None:
        candidates = order[:top_k]
        seeds = [cfg.seed + 1 + k for k in range(reruns)]
        table: list[dict[str, Any]] = []
        means: list[dict[str, float]] = []
        rerun_tflops = 0.0  # part of the search's price
        for i in candidates:
            t = front[i]
            assert t.recipe is not None
            again = [rerunner.rerun(t.recipe, seed, record.base) for seed in seeds]  # type: ignore[arg-type]
            rerun_tflops += sum(r.proxy_tflops for r in again)
            runs = [t.scored(), *again]
            mean = {o: statistics.fmean(r.values[o] for r in runs) for o in rows[i]}
            spread = {o: statistics.pstdev([r.values[o] for r in runs]) for o in rows[i]}
            per_suite = {k: statistics.fmean(r.forgetting_per_suite[k] for r in runs) for k in t.forgetting_per_suite}
            new_tasks = {
                k: (v[0], statistics.fmean(r.new_task_scores[k][1] for r in runs if k in r.new_task_scores))
                for k, v in t.new_task_scores.items()
            }
            checks = check_gates(cfg.gates, Scored(mean, per_suite, new_tasks), suites=record.suites)
            means.append(mean)
            table.append(
                {
                    "trial": t.number,
                    "mean": mean,
                    "std": spread,
                    "runs": len(runs),
                    "feasible": all(c.passed for c in checks),
                }
            )
        # Re-score on the whole front with the candidates' means in place of their single runs, so
        # the [0, 1] scaling of `knee` and `utility` stays that of the front.
        rescored = list(rows)
        for i, mean in zip(candidates, means, strict=True):
            rescored[i] = mean
        new_scores = policy_scores(rescored, objectives, policy, weights)
        pool = [j for j, row in enumerate(table) if row["feasible"]] or list(range(len(table)))
        pick = min(pool, key=lambda j: _rank_key(new_scores, rescored, front, candidates[j]))
        best = candidates[pick]
        winner = table[pick]
        m, sd = means[pick], winner["std"]
        reason += (
            f". Re-run with {reruns} extra seed(s) ({len(candidates)} candidates); on the means trial "
            f"{winner['trial']} ranks first: gain {m['gain']:+.3f} ± {sd['gain']:.3f}, forgetting "
            f"{m['forgetting']:+.3f} ± {sd['forgetting']:.3f}"
            + ("" if winner["feasible"] else " (no candidate passes the gates on its mean: review before release)")
        )
        rerun_record = {"seeds": seeds, "candidates": table, "proxy_tflops": rerun_tflops}
    trial = front[best]
    assert trial.recipe is not None
    if trial.values["gain"] <= 0:
        reason += ". Its gain is not positive: this update would not teach the new task."
    return SelectedRecipe(
        trial_number=trial.number,
        recipe=trial.recipe,
        values=dict(trial.values),
        rule=rule,
        reason=reason,
        policy=policy,
        metrics=dict(trial.metrics),
        reruns=rerun_record,
        gates=cfg.gates.model_dump(mode="json"),
    )


def _rank_key(
    scores: list[float], rows: list[dict[str, float]], front: list[TrialRecord], i: int
) -> tuple[float, float, int]:
    """Higher score first; ties go to the cheaper recipe, then the earlier trial."""
    return (-scores[i], rows[i].get("cost", 0.0), front[i].number)


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 over the checkpoint's config and weight files (names and contents)."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in model_dir.iterdir()
        if p.is_file() and (p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    )
    for p in files:
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def record_selection(
    cfg: StudyConfig,
    study: optuna.Study,
    space: SearchSpace | dict[str, Any],
    selected: SelectedRecipe,
    *,
    store: LineageStore | None = None,
) -> tuple[Path, int]:
    """Write the selected recipe as YAML, into the lineage store and as the study's `selection`
    attribute (the study's database holds both): all of them or, if interrupted, none.

    `space` is the search space as the study ran it (resolved against the model), or its dump.
    Returns the recipe file and the lineage selection id.
    """
    # All or nothing (issue 16): the lineage rows and the study's `selection` attribute (what
    # `apply` and the reports read) commit in one transaction on the study's database, and the
    # recipe file is written (atomically) as that transaction's last step: a failed write rolls
    # the rows back, and a process killed before the commit leaves none of them. Only a kill
    # inside the commit itself can leave the file without its rows; the next `search` or
    # `select` then makes the selection again and rewrites it.
    path = cfg.output_path / "recipe.yaml"
    spec = space if isinstance(space, dict) else space.spec.model_dump(mode="json")
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    attr = {
        "trial_number": selected.trial_number,
        "recipe_hash": selected.recipe.content_hash,
        "policy": selected.policy,
        "rule": selected.rule,
        "reason": selected.reason,
        "reruns": selected.reruns,
        "recipe_file": str(path),
        "gates": selected.gates,
    }
    price = search_price(StudyRecord.read(study), selection=attr)
    own_store = store is None
    store = store or LineageStore(cfg.storage_url)
    try:
        with store.session() as session:
            version_id = store.ensure_version(
                cfg.family,
                cfg.base_version,
                weights_uri=str(cfg.base_model_path),
                weights_checksum=weights_fingerprint(cfg.base_model_path),
            )
            cycle_id = store.ensure_cycle(
                cfg.name,
                base_version_id=version_id,
                optuna_study_id=study._study_id,
                objectives={o: d for o, d in zip(cfg.objectives, cfg.directions(), strict=True)},
                data_manifest=data_manifest(cfg),
                search_space=spec,
            )
            selection_id = store.record_selection(
                cycle_id,
                selected.recipe,
                trial_number=selected.trial_number,
                policy=selected.policy,
                rule=selected.rule,
                reason=selected.reason,
                values=selected.values,
                metrics={**selected.metrics, "reruns": selected.reruns},
                n_complete=n_complete,
                search_tflop=price.search_tflop,
                n_trials=price.trials,
            )
            joined = set_study_attr_in(session, study, ATTR_SELECTION, attr)
            selected.recipe.save(path)
    finally:
        if own_store:
            store.close()
    if not joined:  # a study outside the lineage's database (in memory): its attribute alone
        study.set_user_attr(ATTR_SELECTION, attr)
    return path, selection_id


def select_and_record(
    cfg: StudyConfig,
    study: optuna.Study,
    *,
    space: SearchSpace | None = None,
    rerunner: Rerunner | None = None,
    policy: str | None = None,
    weights: dict[str, float] | None = None,
    reruns: int | None = None,
    top_k: int | None = None,
) -> tuple[SelectedRecipe, Path]:
    """Select under the policy (re-running the top candidates when asked) and record the choice.

    The lineage keeps the search space the study recorded (resolved against its model), else
    `space` (a study written before recipe-opt 0.3 recorded none).
    """
    if (reruns if reruns is not None else cfg.selection.reruns) > 0 and rerunner is None:
        raise StudyError("re-running candidates needs the model: pass a rerunner")
    selected = select_recipe(study, cfg, policy=policy, weights=weights, rerunner=rerunner, reruns=reruns, top_k=top_k)
    recorded = study.user_attrs.get(ATTR_SPACE)  # the one attribute: no need to read every trial again
    spec: SearchSpace | dict[str, Any] = recorded if recorded is not None else (space or {})
    path, _ = record_selection(cfg, study, spec, selected)
    return selected, path
