"""Eval suites and the objective arithmetic: gain and forgetting from before/after scores.

    suite score   = mean over the suite's tasks of the task's `acc`       (macro average)
    gain          = new_suite(after) - new_suite(before)
    forgetting_s  = retention_suite_s(before) - retention_suite_s(after)   (per suite)
    forgetting    = sum_s w_s * forgetting_s / sum_s w_s                   (weighted aggregate)

Forgetting keeps its sign: a negative value is backward transfer (the update improved an old
capability). Clipping it at zero would hide that, and hide regressions that an improvement in
another suite offsets in the aggregate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recipe_opt.evaluate._scorers import TaskScorer

__all__ = ["Evaluation", "Outcome", "Suite", "SuiteEvaluator", "compute_outcome"]

PRIMARY_METRIC = "acc"


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError(f"suite {self.name!r} must name at least one task")
        if self.weight <= 0:
            raise ValueError(f"`weight > 0` must hold, but got (suite={self.name!r}, weight={self.weight})")


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model: per task (every metric) and per suite (the primary metric)."""

    tasks: Mapping[str, Mapping[str, float]]
    suites: Mapping[str, float]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": {k: dict(v) for k, v in self.tasks.items()},
            "suites": dict(self.suites),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evaluation:
        return cls(tasks=d["tasks"], suites=d["suites"], seconds=float(d.get("seconds", 0.0)))


@dataclass(frozen=True)
class Outcome:
    gain: float
    forgetting: float
    forgetting_per_suite: Mapping[str, float] = field(default_factory=dict)


def suite_score(task_scores: Mapping[str, Mapping[str, float]], suite: Suite) -> float:
    return sum(task_scores[t][PRIMARY_METRIC] for t in suite.tasks) / len(suite.tasks)


def compute_outcome(before: Evaluation, after: Evaluation, new_suite: Suite, retention: Sequence[Suite]) -> Outcome:
    gain = after.suites[new_suite.name] - before.suites[new_suite.name]
    per_suite = {s.name: before.suites[s.name] - after.suites[s.name] for s in retention}
    total_w = sum(s.weight for s in retention)
    forgetting = sum(s.weight * per_suite[s.name] for s in retention) / total_w
    return Outcome(gain=gain, forgetting=forgetting, forgetting_per_suite=per_suite)


class SuiteEvaluator:
    """Scores a model on the new-task suite and every retention suite through one scorer."""

    def __init__(self, scorer: TaskScorer, new_suite: Suite, retention: Sequence[Suite]) -> None:
        self.scorer = scorer
        self.new_suite = new_suite
        self.retention = tuple(retention)

    @property
    def suites(self) -> tuple[Suite, ...]:
        return (self.new_suite, *self.retention)

    def evaluate(self, model: Any) -> Evaluation:
        start = time.perf_counter()
        scores = self.scorer.score(model)
        suites = {s.name: suite_score(scores, s) for s in self.suites}
        return Evaluation(tasks=scores, suites=suites, seconds=time.perf_counter() - start)

    def outcome(self, before: Evaluation, after: Evaluation) -> Outcome:
        return compute_outcome(before, after, self.new_suite, self.retention)
