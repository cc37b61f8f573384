"""Selection of the recipe to apply, and what it leaves behind: recipe file and lineage rows."""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from recipe_opt.config import OBJECTIVES, StudyConfig
from recipe_opt.exceptions import StudyError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Recipe
from recipe_opt.space import SearchSpace
from recipe_opt.study._runner import (
    ATTR_METRICS,
    ATTR_RECIPE,
    data_manifest,
    file_sha256,
    gate_values,
    is_prior,
)

__all__ = [
    "POLICY_RULES",
    "SelectedRecipe",
    "is_feasible",
    "pareto_front",
    "policy_scores",
    "record_selection",
    "select_recipe",
    "trial_values",
]

POLICY_RULES = {
    "gain-within-gates": "the feasible Pareto trial (all release gates pass) with the highest gain; ties: lower cost",
    "knee": (
        "the feasible Pareto trial closest to the ideal point, each objective scaled to [0, 1] over "
        "the feasible front (the front's knee: the best compromise)"
    ),
    "utility": "the feasible Pareto trial with the highest weighted sum of objectives scaled to [0, 1] over the front",
}


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


def trial_values(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """gain / forgetting / cost of a complete trial, whichever of them the study optimised."""
    m = trial.user_attrs.get(ATTR_METRICS) or {}
    return {k: float(m[k]) for k in ("gain", "forgetting", "cost") if k in m}


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal complete trials that pass every gate, by number.

    Optuna's `best_trials`, except that prior observations from other cycles (warm start) are
    neither candidates nor dominate anything: their values were measured on other data.
    """
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not any(is_prior(t) for t in trials):
        return sorted(study.best_trials, key=lambda t: t.number)
    feasible = [t for t in trials if not is_prior(t) and is_feasible(t)]
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]

    def dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
        x = [s * v for s, v in zip(signs, a.values, strict=True)]
        y = [s * v for s, v in zip(signs, b.values, strict=True)]
        return all(p >= q for p, q in zip(x, y, strict=True)) and x != y

    return [t for t in feasible if not any(dominates(o, t) for o in feasible if o is not t)]


def _scaled(rows: list[dict[str, float]], objectives: list[str]) -> list[dict[str, float]]:
    """Each objective mapped to [0, 1] over `rows`, oriented so that 1 is best."""
    out: list[dict[str, float]] = [{} for _ in rows]
    for o in objectives:
        vals = [r[o] for r in rows]
        lo, hi = min(vals), max(vals)
        for i, v in enumerate(vals):
            x = 0.5 if hi == lo else (v - lo) / (hi - lo)
            out[i][o] = x if OBJECTIVES[o] == "maximize" else 1.0 - x
    return out


def policy_scores(
    rows: list[dict[str, float]], objectives: list[str], policy: str, weights: dict[str, float]
) -> list[float]:
    """Score of each candidate under `policy` (higher is better)."""
    if policy == "gain-within-gates":
        return [r["gain"] for r in rows]  # ties go to the cheaper recipe (see _rank_key)
    scaled = _scaled(rows, objectives)
    if policy == "knee":
        return [-math.sqrt(sum((1.0 - x[o]) ** 2 for o in objectives)) for x in scaled]
    if policy == "utility":
        return [sum(weights.get(o, 0.0) * x[o] for o in objectives) for x in scaled]
    raise StudyError(f"unknown selection policy {policy!r}; known: {', '.join(POLICY_RULES)}")


def select_recipe(
    study: optuna.Study,
    cfg: StudyConfig,
    *,
    policy: str | None = None,
    weights: dict[str, float] | None = None,
    rerun: Callable[[Recipe, int], tuple[dict[str, float], dict[str, float]]] | None = None,
    reruns: int | None = None,
    top_k: int | None = None,
) -> SelectedRecipe:
    """Pick the recipe to apply from the feasible Pareto front under a policy.

    With `reruns > 0` and a `rerun(recipe, seed)` function, the policy's top `top_k` candidates
    are trained again with `reruns` extra seeds and the choice is made on the means; the record
    keeps every candidate's mean and spread.
    """
    policy = policy or cfg.selection.policy
    weights = weights or cfg.selection.weights
    reruns = cfg.selection.reruns if reruns is None else reruns
    top_k = top_k or cfg.selection.top_k
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if not is_prior(t)
    ]
    front = pareto_front(study)
    if not front:
        n_feasible = sum(is_feasible(t) for t in complete)
        raise StudyError(
            f"no recipe passes the release gates ({len(complete)} complete trials, {n_feasible} feasible): "
            "loosen `gates` or search longer; nothing was selected"
        )
    objectives: list[str] = list(cfg.objectives)
    rows = [trial_values(t) for t in front]
    scores = policy_scores(rows, objectives, policy, weights)
    order = sorted(range(len(front)), key=lambda i: _rank_key(scores, rows, front, i))
    best = order[0]
    rule = POLICY_RULES[policy] + (f" (weights {weights})" if policy == "utility" else "")
    reason = (
        f"{len(front)} of {len(complete)} complete trials are feasible and Pareto-optimal; under `{policy}` "
        f"trial {front[best].number} ranks first (gain {rows[best]['gain']:+.3f}, forgetting "
        f"{rows[best]['forgetting']:+.3f}, cost {rows[best].get('cost', math.nan):.3g} TFLOP)"
    )
    rerun_record: dict[str, Any] | None = None
    if reruns and rerun is not None:
        candidates = order[:top_k]
        seeds = [cfg.seed + 1 + k for k in range(reruns)]
        table: list[dict[str, Any]] = []
        means: list[dict[str, float]] = []
        for i in candidates:
            recipe = Recipe.from_dict(front[i].user_attrs[ATTR_RECIPE])
            first = (rows[i], dict((front[i].user_attrs.get(ATTR_METRICS) or {}).get("forgetting_per_suite", {})))
            runs = [first] + [rerun(recipe, seed) for seed in seeds]
            mean = {o: statistics.fmean(r[0][o] for r in runs) for o in rows[i]}
            spread = {o: statistics.pstdev([r[0][o] for r in runs]) for o in rows[i]}
            per_suite = {k: statistics.fmean(r[1][k] for r in runs) for k in first[1]}
            means.append(mean)
            table.append(
                {
                    "trial": front[i].number,
                    "mean": mean,
                    "std": spread,
                    "runs": len(runs),
                    "feasible": all(v <= 0 for v in gate_values(mean, per_suite, cfg.gates).values()),
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
        rerun_record = {"seeds": seeds, "candidates": table}
    trial = front[best]
    values = trial_values(trial)
    if values["gain"] <= 0:
        reason += ". Its gain is not positive: this update would not teach the new task."
    return SelectedRecipe(
        trial_number=trial.number,
        recipe=Recipe.from_dict(trial.user_attrs[ATTR_RECIPE]),
        values=values,
        rule=rule,
        reason=reason,
        policy=policy,
        metrics=dict(trial.user_attrs.get(ATTR_METRICS) or {}),
        reruns=rerun_record,
    )


def _rank_key(
    scores: list[float], rows: list[dict[str, float]], front: list[optuna.trial.FrozenTrial], i: int
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
    space: SearchSpace,
    selected: SelectedRecipe,
    *,
    store: LineageStore | None = None,
) -> tuple[Path, int]:
    """Write the selected recipe as YAML and into the lineage store (same database as the study).

    Returns the recipe file and the lineage selection id.
    """
    own_store = store is None
    store = store or LineageStore(cfg.storage_url)
    try:
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
            search_space=space.spec.model_dump(mode="json"),
        )
        n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
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
        )
    finally:
        if own_store:
            store.close()
    path = selected.recipe.save(cfg.output_path / "recipe.yaml")
    study.set_user_attr(
        "selection",
        {
            "trial_number": selected.trial_number,
            "recipe_hash": selected.recipe.content_hash,
            "policy": selected.policy,
            "rule": selected.rule,
            "reason": selected.reason,
            "reruns": selected.reruns,
            "recipe_file": str(path),
        },
    )
    return path, selection_id
