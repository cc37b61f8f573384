"""Typed records of a trial and of a study, read from Optuna's storage.

Everything recipe-opt keeps about a trial lives in its user attributes (recipe, metrics, origin,
rung values, failure and its kind, worker); about a study, in the study's (config, objectives,
base scores, resolved space, selection). These records are the one reader of those attributes:
selection, the reports, the lineage writes and the command line work on `TrialRecord` and
`StudyRecord`, never on `user_attrs[...]` dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import TrialState

from recipe_opt.config import GatesConfig
from recipe_opt.evaluate import PRIMARY_METRIC, Evaluation
from recipe_opt.recipe import Recipe
from recipe_opt.registry import OBJECTIVES, values_of
from recipe_opt.study._attrs import (
    ATTR_BASE_EVAL,
    ATTR_BUDGET,
    ATTR_CONFIG,
    ATTR_FAILURE,
    ATTR_FAILURE_KIND,
    ATTR_FIDELITY,
    ATTR_METRICS,
    ATTR_OBJECTIVES,
    ATTR_ORIGIN,
    ATTR_PRESCREEN,
    ATTR_PROXY_TFLOPS,
    ATTR_RECIPE,
    ATTR_RUNGS,
    ATTR_SELECTION,
    ATTR_SPACE,
    ATTR_SUMMARY,
    ATTR_WORKER,
    PRIOR,
)
from recipe_opt.study._gates import GateCheck, Scored, check_gates
from recipe_opt.study._noise import Spread, TaskMove, task_moves, value_spread

__all__ = ["Failure", "StudyRecord", "TrialRecord", "dominates", "failure_reason"]

# A study read without its config (reports of hand-built studies) applies no bounds but the
# gain's: every gate a config leaves unset passes.
NO_GATES = GatesConfig(max_forgetting=None, max_new_task_drop=None)


@dataclass(frozen=True)
class Failure:
    """Why a trial failed or was pruned: its kind (see `FAILURE_KINDS`) and the reason in words."""

    kind: str
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    recipe: Recipe | None
    values: dict[str, float]  # gain, forgetting, cost as measured (complete trials)
    metrics: dict[str, Any]
    origin: str | None
    failure: Failure | None
    rungs: dict[str, dict[str, float]]
    worker: str | None
    retry_of: int | None
    proxy_tflops: float
    seconds: float | None
    new_task_scores: dict[str, tuple[float, float]]  # new task -> (base, after), complete trials
    # A budgeted search's rung: {"rung", "kind", "share" of the full steps, "full", "continues", ...}.
    fidelity: dict[str, Any]
    trial: optuna.trial.FrozenTrial = field(repr=False, compare=False)

    @classmethod
    def read(cls, t: optuna.trial.FrozenTrial, base: Evaluation | None, new_tasks: Sequence[str]) -> TrialRecord:
        a = t.user_attrs
        metrics = dict(a.get(ATTR_METRICS) or {})
        recipe = Recipe.from_dict(a[ATTR_RECIPE]) if ATTR_RECIPE in a else None
        failure = None
        if a.get(ATTR_FAILURE) is not None:
            failure = Failure(str(a.get(ATTR_FAILURE_KIND) or "error"), str(a[ATTR_FAILURE]))
        elif t.state == TrialState.FAIL:  # killed outright: nothing written; another worker failed it
            who = (a.get(ATTR_WORKER) or {}).get("id") or "its worker"
            failure = Failure(
                "worker lost",
                f"worker lost: {who} stopped heartbeating (killed, or its machine or connection was lost)",
            )
        scores = new_task_scores(base.tasks if base else {}, metrics.get("tasks_after") or {}, new_tasks)
        start, end = t.datetime_start, t.datetime_complete
        retry = t.system_attrs.get("failed_trial")
        return cls(
            number=t.number,
            state=t.state.name,
            recipe=recipe,
            values=values_of(metrics) if t.state == TrialState.COMPLETE else {},
            metrics=metrics,
            origin=a.get(ATTR_ORIGIN),
            failure=failure,
            rungs=dict(a.get(ATTR_RUNGS) or {}),
            worker=(a.get(ATTR_WORKER) or {}).get("id"),
            retry_of=None if retry is None else int(retry),
            proxy_tflops=float(a.get(ATTR_PROXY_TFLOPS, 0.0)),
            seconds=(end - start).total_seconds() if start and end else None,
            new_task_scores=scores,
            fidelity=dict(a.get(ATTR_FIDELITY) or {}),
            trial=t,
        )

    @property
    def prior(self) -> bool:
        """A prior observation: values measured in another cycle, for the sampler only."""
        return str(self.origin or "").startswith(PRIOR)

    @property
    def complete(self) -> bool:
        """Complete with metrics: a measurement of this cycle (prior observations excluded)."""
        return self.state == "COMPLETE" and bool(self.values) and not self.prior

    @property
    def finished(self) -> bool:
        return self.state in ("COMPLETE", "PRUNED", "FAIL")

    @property
    def share(self) -> float | None:
        """Share of the full update's steps this trial's run reached (budgeted searches; else None)."""
        share = self.fidelity.get("share")
        return None if share is None else float(share)

    @property
    def full_run(self) -> bool:
        """A budgeted search's finalist: trained to the end of its schedule, a full update."""
        return bool(self.fidelity.get("full"))

    @property
    def summary(self) -> str:
        text = self.trial.user_attrs.get(ATTR_SUMMARY)
        return str(text) if text is not None else (self.recipe.summary() if self.recipe else "")

    @property
    def forgetting_per_suite(self) -> dict[str, float]:
        return dict(self.metrics.get("forgetting_per_suite") or {})

    def scored(self) -> Scored:
        return Scored(self.values, self.forgetting_per_suite, self.new_task_scores)

    def checks(self, gates: GatesConfig, suites: Sequence[str] | None = None) -> list[GateCheck]:
        return check_gates(gates, self.scored(), suites=suites)

    def feasible(self, gates: GatesConfig, suites: Sequence[str] | None = None) -> bool:
        return self.complete and all(c.passed for c in self.checks(gates, suites))


def new_task_scores(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]], tasks: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """(before, after) primary score of each new task that both evaluations measured."""
    return {
        t: (float(before[t][PRIMARY_METRIC]), float(after[t][PRIMARY_METRIC]))
        for t in tasks
        if t in before and t in after
    }


def dominates(a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[str]) -> bool:
    """a dominates b: at least as good on every objective and better on one."""
    better = False
    for o in objectives:
        x, y = (a[o], b[o]) if OBJECTIVES[o].maximize else (-a[o], -b[o])
        if x < y:
            return False
        better = better or x > y
    return better


@dataclass(frozen=True)
class StudyRecord:
    """A study as recipe-opt wrote it: its config's gates and suites, base scores, trials, selection."""

    name: str
    objectives: list[str]
    config: dict[str, Any]  # the config the study was created with (JSON), for the record
    gates: GatesConfig
    family: str | None
    base_version: str | None
    new_suite: str | None
    new_tasks: tuple[str, ...]
    retention: dict[str, list[str]]  # retention suite -> its tasks
    base: Evaluation | None
    selection: dict[str, Any] | None
    budget: int | None
    space: dict[str, Any] | None  # the search space as resolved against the model
    trials: list[TrialRecord]
    study: optuna.Study = field(repr=False, compare=False)
    prescreen: dict[str, Any] | None = None  # a prescreened search's probes and what they cost

    @classmethod
    def read(cls, study: optuna.Study, *, gates: GatesConfig | None = None) -> StudyRecord:
        """`gates` replaces the recorded ones (a re-selection under a changed config)."""
        a = study.user_attrs
        config = dict(a.get(ATTR_CONFIG) or {})
        evaluation = config.get("evaluation") or {}
        selection = a.get(ATTR_SELECTION) or None
        if gates is None:
            # A stored config holds every gate; a bound it lacks (a study written before that gate
            # existed, or by hand) was not set, rather than at today's default.
            recorded = (selection or {}).get("gates") or config.get("gates") or {}
            gates = GatesConfig.model_validate({**NO_GATES.model_dump(), **recorded})
        base = Evaluation.from_dict(a[ATTR_BASE_EVAL]) if a.get(ATTR_BASE_EVAL) else None
        new_tasks = tuple((evaluation.get("new_task") or {}).get("tasks") or ())
        objectives = list(a.get(ATTR_OBJECTIVES) or OBJECTIVES.names()[: len(study.directions)])
        return cls(
            name=study.study_name,
            objectives=objectives,
            config=config,
            gates=gates,
            family=config.get("family"),
            base_version=config.get("base_version"),
            new_suite=(evaluation.get("new_task") or {}).get("name"),
            new_tasks=new_tasks,
            retention={str(s["name"]): list(s.get("tasks") or []) for s in evaluation.get("retention") or []},
            base=base,
            selection=selection,
            budget=a.get(ATTR_BUDGET),
            space=a.get(ATTR_SPACE),
            trials=[TrialRecord.read(t, base, new_tasks) for t in study.get_trials(deepcopy=False)],
            study=study,
            prescreen=a.get(ATTR_PRESCREEN) or None,
        )

    # ---- trials ------------------------------------------------------------------------------
    def trial(self, number: int) -> TrialRecord:
        return next(t for t in self.trials if t.number == number)

    @property
    def complete(self) -> list[TrialRecord]:
        """This cycle's complete trials (prior observations left out)."""
        return [t for t in self.trials if t.complete]

    def suite_tasks(self, *, retention_only: bool = False) -> dict[str, list[str]]:
        """Suite name -> its tasks, as the study's config defines them (new-task suite first)."""
        new = {} if retention_only or self.new_suite is None else {self.new_suite: list(self.new_tasks)}
        return {**new, **self.retention}

    @property
    def suites(self) -> list[str] | None:
        """Retention suites every gate bounds (None: those each trial measured)."""
        return list(self.retention) or None

    def checks(self, t: TrialRecord) -> list[GateCheck]:
        return t.checks(self.gates, self.suites)

    def feasible(self, t: TrialRecord) -> bool:
        return t.feasible(self.gates, self.suites)

    @cached_property
    def front(self) -> list[TrialRecord]:
        """Pareto-optimal complete trials that pass every gate, by number.

        In a budgeted search (`trials.budget`) each recipe counts once, by its highest-fidelity run
        (`judged`), and only the recipes at the highest fidelity a feasible one reached are
        candidates: the finalists' full runs, when any passes.

        Feasibility is the gates' (`check_gates`), applied to each trial's measured values, not
        the constraints Optuna stored when it ran: a study resumed or re-selected under other
        gates is judged by the gates in force. Prior observations are neither candidates nor
        dominate anything: their values were measured on other data.
        """
        feasible = [t for t in self.judged if self.feasible(t)]
        if any(t.share is not None for t in feasible):
            # A budgeted search: candidates are the recipes at the highest fidelity any feasible
            # recipe reached (its finalists' full runs), not screens measured on a fraction.
            top = max(t.share or 0.0 for t in feasible)
            feasible = [t for t in feasible if (t.share or 0.0) == top]
        objectives = self.objectives
        return [
            t for t in feasible if not any(dominates(o.values, t.values, objectives) for o in feasible if o is not t)
        ]

    @cached_property
    def judged(self) -> list[TrialRecord]:
        """Complete trials, each recipe judged by its highest-fidelity run: in a budgeted search a
        recipe screened, promoted and trained in full counts once, as its full run (a recipe that
        failed the gates in full is not a candidate on the strength of its screen)."""
        if not any(t.share is not None for t in self.complete):
            return self.complete
        best: dict[str, TrialRecord] = {}
        for t in self.complete:
            key = t.recipe.content_hash if t.recipe is not None else f"#{t.number}"
            if key not in best or (t.share or 0.0) >= (best[key].share or 0.0):
                best[key] = t
        return sorted(best.values(), key=lambda t: t.number)

    def missed(self, t: TrialRecord) -> list[GateCheck]:
        """The gates `t` fails (none: it is feasible)."""
        return [c for c in self.checks(t) if not c.passed]

    def nearest_misses(self, k: int = 5) -> list[tuple[TrialRecord, list[GateCheck]]]:
        """The complete trials closest to passing every gate, with the gates each missed: fewest
        gates missed first, then the smallest total excess over the bounds."""
        misses = []
        for t in self.complete:
            failed = self.missed(t)
            if failed:
                misses.append((t, failed))
        misses.sort(key=lambda m: (len(m[1]), sum(c.constraint or 0.0 for c in m[1]), m[0].number))
        return misses[:k]

    # ---- uncertainty -------------------------------------------------------------------------
    def seed_sd(self, t: TrialRecord, objective: str) -> tuple[float | None, str | None]:
        """The seed-to-seed sd of `t`'s `objective`: from the selection's re-runs of `t` when it
        was re-run, else as declared in the config's `noise:` (None where neither says)."""
        for row in ((self.selection or {}).get("reruns") or {}).get("candidates") or []:
            if row.get("trial") == t.number and objective in (row.get("std") or {}):
                return float(row["std"][objective]), f"measured over {row.get('runs', '?')} seeds (re-runs)"
        noise = self.config.get("noise") or {}
        if noise.get(objective) is not None:
            return float(noise[objective]), f"declared: {noise.get('source') or 'study config'}"
        return None, None

    def spread(
        self, t: TrialRecord, objective: str, tasks_after: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Spread:
        """How sure `t`'s `objective` is (`tasks_after`: another run of its recipe, e.g. the full run)."""
        evaluation = self.config.get("evaluation") or {}
        weights = {str(s["name"]): float(s.get("weight", 1.0)) for s in evaluation.get("retention") or []}
        retention = {name: (tasks, weights.get(name, 1.0)) for name, tasks in self.retention.items()}
        seed, source = self.seed_sd(t, objective)
        after = t.metrics.get("tasks_after") or {} if tasks_after is None else tasks_after
        return value_spread(
            objective, after, new_tasks=self.new_tasks, retention=retention, seed_sd=seed, seed_source=source
        )

    def task_moves(self, tasks_after: Mapping[str, Mapping[str, Any]]) -> list[TaskMove]:
        """Every task of this study's suites, base (this cycle's evaluation) against `tasks_after`."""
        return task_moves(self.base.tasks if self.base is not None else {}, tasks_after, self.suite_tasks())

    @property
    def selected(self) -> TrialRecord | None:
        number = (self.selection or {}).get("trial_number")
        return None if number is None else self.trial(int(number))

    def proxy_compute(self) -> float:
        """TFLOP the study's proxies have spent, pruned and failed trials included."""
        return sum(t.proxy_tflops for t in self.trials)

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    def ending_reasons(self) -> list[str]:
        """One line per distinct reason a trial failed or was pruned, most common first; early
        stops are counted by kind (their reasons differ only in the numbers)."""
        counts: dict[str, int] = {}
        for t in self.trials:
            if t.state not in ("FAIL", "PRUNED"):
                continue
            f = t.failure
            key = f.kind if f is not None and f.kind == "stopped early" else (f.reason if f else "no reason recorded")
            line = f"{t.state.lower()}: {key}"
            counts[line] = counts.get(line, 0) + 1
        return [f"{n} x {r}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def failure_reason(trial: optuna.trial.FrozenTrial) -> str | None:
    """Why a trial failed or was pruned (its `TrialRecord.failure`), or None."""
    failure = TrialRecord.read(trial, None, ()).failure
    return None if failure is None else str(failure)
