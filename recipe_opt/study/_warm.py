"""Warm starts keyed to the model lineage.

A new cycle's study is seeded from earlier cycles of the same family, held in the same storage:

* `auto`: the cycle whose selected recipe produced the study's base version (through `apply`);
  failing that, the latest other cycle on the same base version;
* or named studies.

From each source the selected recipe and then members of its feasible Pareto front (spread over
the front by gain) are enqueued first; they are trained and scored again on this cycle's data and
base, like any trial. Parameters are mapped into the new search space with
`SearchSpace.transfer` (clipped into range or dropped, one note each). Optionally, the sources'
complete trials are also added as *prior observations* (`add_trial`) for the sampler's model;
they keep the values measured in their own cycle, are marked `origin: prior`, never count
towards the budget and are never selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.exceptions import ConfigError, StudyError
from recipe_opt.lineage import LineageStore
from recipe_opt.space import SearchSpace
from recipe_opt.study._attrs import ATTR_METRICS, ATTR_OBJECTIVES, ATTR_ORIGIN, ATTR_RECIPE, PRIOR
from recipe_opt.study._gates import Scored, check_gates, constraints
from recipe_opt.study._records import StudyRecord, TrialRecord

__all__ = ["WarmStart", "WarmStartRequest", "plan_warm_start"]


@dataclass(frozen=True)
class WarmStartRequest:
    """What a new study is to be seeded from: source studies (`[auto]` or names), how many recipes
    to enqueue, and whether their trials become prior observations. The runner plans it on its
    own resolved search space (`StudyRunner.prepare`)."""

    sources: tuple[str, ...]
    max_recipes: int = 8
    priors: bool = False

    @classmethod
    def of(cls, cfg: StudyConfig, sources: Sequence[str] | None = None, priors: bool | None = None) -> WarmStartRequest:
        """The config's `warm_start`, with the command line's `--warm-start` / `--warm-start-priors`
        (when given) in place of its studies and priors; `none` means a cold start."""
        chosen = list(cfg.warm_start.studies) if sources is None else [s for s in sources if s != "none"]
        if "auto" in chosen and len(chosen) > 1:
            raise ConfigError.single("--warm-start", "", f"`auto` stands alone, but got {chosen}")
        return cls(tuple(chosen), cfg.warm_start.max_recipes, cfg.warm_start.priors if priors is None else priors)


@dataclass
class WarmStart:
    sources: list[str] = field(default_factory=list)
    enqueue: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (params, origin)
    priors: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _resolve_sources(cfg: StudyConfig, requested: Sequence[str], store: LineageStore) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    if list(requested) != ["auto"]:
        return [s for s in requested if s != "auto"], notes
    parent_cycle = store.producing_cycle(cfg.family, cfg.base_version)
    if parent_cycle is not None and parent_cycle != cfg.name:
        return [parent_cycle], [f"auto: {cfg.family}/{cfg.base_version} was produced by study {parent_cycle!r}"]
    same_base = [c for c, base, sel in store.cycles(cfg.family) if base == cfg.base_version and c != cfg.name and sel]
    if same_base:
        return [same_base[-1]], [f"auto: latest earlier study on {cfg.family}/{cfg.base_version}: {same_base[-1]!r}"]
    notes.append(f"auto: no earlier cycle of {cfg.family}/{cfg.base_version} in the lineage store: cold start")
    return [], notes


def _spread(trials: list[TrialRecord], k: int) -> list[TrialRecord]:
    """Up to k trials spread evenly over the front ordered by gain (both ends included)."""
    if k <= 0 or not trials:
        return []
    ordered = sorted(trials, key=lambda t: t.values["gain"])
    if len(ordered) <= k:
        return ordered
    idx = sorted({round(i * (len(ordered) - 1) / max(1, k - 1)) for i in range(k)})
    return [ordered[i] for i in idx]


def plan_warm_start(
    cfg: StudyConfig,
    space: SearchSpace,
    requested: Sequence[str],
    *,
    store: LineageStore,
    max_recipes: int = 8,
    priors: bool = False,
) -> WarmStart:
    """What to seed a new study with; raises `StudyError` when a source is missing or unusable."""
    plan = WarmStart()
    sources, plan.notes = _resolve_sources(cfg, requested, store)
    plan.sources = sources
    seen: list[dict[str, Any]] = []
    for name in sources:
        if name == cfg.name:
            raise StudyError(f"--warm-start {name}: a study cannot warm-start from itself")
        try:
            src = optuna.load_study(study_name=name, storage=cfg.storage_url)
        except KeyError:
            known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(cfg.storage_url)) or "none"
            raise StudyError(
                f"--warm-start {name}: no such study in {cfg.storage_display} (studies there: {known})"
            ) from None
        record = StudyRecord.read(src)
        front = record.front
        selected = [record.selected] if record.selected is not None else []
        chosen = selected + [t for t in _spread(front, max_recipes) if t not in selected]
        transferred = 0
        dropped: dict[str, list[int]] = {}  # one line per distinct note, naming the trials
        for t in chosen:
            if len(plan.enqueue) >= max_recipes:
                break
            assert t.recipe is not None  # complete trials hold their recipe
            params, notes = space.transfer(t.recipe)
            for n in notes:
                dropped.setdefault(n, []).append(t.number)
            if not params:
                continue
            transferred += 1
            if params in seen:
                continue
            seen.append(params)
            role = "selected" if t in selected else "Pareto"
            plan.enqueue.append((params, f"warm start: {name} trial {t.number} ({role})"))
        for note, numbers in dropped.items():
            which = f"trial {numbers[0]}" if len(numbers) == 1 else f"trials {', '.join(map(str, numbers))}"
            plan.notes.append(f"{name} {which}: {note}")
        if chosen and not transferred:
            raise StudyError(
                f"--warm-start {name}: none of its recipes maps onto this search space "
                f"({cfg.search_space_path}); the spaces are incompatible"
            )
        if not chosen:
            plan.notes.append(f"{name}: no feasible Pareto trial to start from")
        if priors:
            plan.priors.extend(_priors(cfg, space, record, name, plan.notes))
    return plan


class _Recorder:
    """A stand-in trial that answers `suggest_*` from fixed params and records distributions."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {}

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self.distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log, step=step)
        return float(self.params.get(name, low))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.distributions[name] = optuna.distributions.IntDistribution(low, high, log=log, step=step)
        return int(self.params.get(name, low))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.distributions[name] = optuna.distributions.CategoricalDistribution(list(choices))
        return self.params.get(name, choices[0])


def _priors(
    cfg: StudyConfig, space: SearchSpace, src: StudyRecord, name: str, notes: list[str]
) -> list[optuna.trial.FrozenTrial]:
    objectives = list(src.study.user_attrs.get(ATTR_OBJECTIVES) or [])
    if objectives != list(cfg.objectives):
        raise StudyError(
            f"--warm-start-priors: study {name!r} optimised {objectives}, this one {list(cfg.objectives)}: "
            "its values cannot be prior observations"
        )
    out = []
    for t in src.complete:
        assert t.recipe is not None
        params, _ = space.transfer(t.recipe)
        rec = _Recorder(params)
        space.sample(rec)
        dists = {k: d for k, d in rec.distributions.items() if k in params}
        if not dists:
            continue
        out.append(
            optuna.trial.create_trial(
                params={k: params[k] for k in dists},
                distributions=dists,
                values=[t.values[o] for o in cfg.objectives],
                user_attrs={
                    ATTR_ORIGIN: f"{PRIOR}: {name} trial {t.number}",
                    ATTR_RECIPE: t.trial.user_attrs[ATTR_RECIPE],
                    ATTR_METRICS: t.trial.user_attrs[ATTR_METRICS],
                },
                constraints=_prior_constraints(cfg, t),
            )
        )
    notes.append(f"{name}: {len(out)} complete trials added as prior observations (not selectable)")
    return out


def _prior_constraints(cfg: StudyConfig, t: TrialRecord) -> dict[str, float]:
    """A prior's constraints under this cycle's gates, with the same names as this cycle's trials
    (Optuna's GP sampler refuses trials whose constraint names differ). A retention suite the
    prior's cycle did not measure counts as its aggregate forgetting; a new task of this cycle,
    which it did not measure, as no drop."""
    suites = [s.name for s in cfg.evaluation.retention]
    scored = Scored(
        t.values,
        {s: t.forgetting_per_suite.get(s, t.values["forgetting"]) for s in suites},
        {task: (0.0, 0.0) for task in cfg.evaluation.new_task.tasks},
    )
    return constraints(check_gates(cfg.gates, scored, suites=suites))
