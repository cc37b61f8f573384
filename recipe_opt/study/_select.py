"""Selection of the recipe to apply, and what it leaves behind: recipe file and lineage rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.exceptions import StudyError
from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Recipe
from recipe_opt.space import SearchSpace
from recipe_opt.study._runner import ATTR_METRICS, ATTR_RECIPE, data_manifest, file_sha256

__all__ = [
    "SELECTION_RULE",
    "SelectedRecipe",
    "pareto_front",
    "record_selection",
    "select_recipe",
    "trial_values",
]

SELECTION_RULE = (
    "among Pareto-optimal trials whose forgetting is at most {max_forgetting:g}, the one with the "
    "highest gain (ties: lower cost); if none is within that budget, the one with the least forgetting"
)


@dataclass(frozen=True)
class SelectedRecipe:
    trial_number: int
    recipe: Recipe
    values: dict[str, float]
    rule: str
    reason: str
    within_budget: bool
    metrics: dict[str, Any]


def trial_values(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """gain / forgetting / cost of a complete trial, whichever of them the study optimised."""
    m = trial.user_attrs.get(ATTR_METRICS) or {}
    return {k: float(m[k]) for k in ("gain", "forgetting", "cost") if k in m}


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal complete trials (Optuna's `best_trials`), by trial number."""
    return sorted(study.best_trials, key=lambda t: t.number)


def select_recipe(study: optuna.Study, cfg: StudyConfig) -> SelectedRecipe:
    front = pareto_front(study)
    if not front:
        raise StudyError(f"study {study.study_name!r} has no complete trial to select from")
    budget = cfg.selection.max_forgetting
    rule = SELECTION_RULE.format(max_forgetting=budget)
    scored = [(t, trial_values(t)) for t in front]
    within = [(t, v) for t, v in scored if v["forgetting"] <= budget]
    if within:
        trial, values = max(within, key=lambda tv: (tv[1]["gain"], -tv[1].get("cost", 0.0), -tv[0].number))
        reason = (
            f"{len(within)} of {len(front)} Pareto trials forget at most {budget:g}; trial "
            f"{trial.number} has the highest gain among them ({values['gain']:+.3f}, forgetting "
            f"{values['forgetting']:+.3f}, cost {values.get('cost', float('nan')):.3g} TFLOP)"
        )
    else:
        trial, values = min(scored, key=lambda tv: (tv[1]["forgetting"], -tv[1]["gain"]))
        reason = (
            f"no Pareto trial forgets at most {budget:g}; trial {trial.number} forgets least "
            f"({values['forgetting']:+.3f}, gain {values['gain']:+.3f}). Review before release."
        )
    if values["gain"] <= 0:
        reason += " Its gain is not positive: this update would not teach the new task."
    recipe = Recipe.from_dict(trial.user_attrs[ATTR_RECIPE])
    return SelectedRecipe(
        trial_number=trial.number,
        recipe=recipe,
        values=values,
        rule=rule,
        reason=reason,
        within_budget=bool(within),
        metrics=dict(trial.user_attrs.get(ATTR_METRICS) or {}),
    )


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
            rule=selected.rule,
            reason=selected.reason,
            values=selected.values,
            metrics=selected.metrics,
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
            "rule": selected.rule,
            "reason": selected.reason,
            "recipe_file": str(path),
        },
    )
    return path, selection_id
