"""How sure a measured value is, and when a difference is within that.

Three sources, each used where it is known:

* **eval sampling** (always): a task scored on `n` items has the binomial standard error
  sqrt(p (1 - p) / n) and moves in steps of 1 / n (22 items: 0.045 a step). A suite's score is
  the mean of its tasks', so its error is sqrt(sum p (1 - p) / n) / k over its k tasks.
* **re-runs** (`selection.reruns`): the top candidates trained again with other seeds; their
  spread is measured, per candidate.
* **declared** (`noise:` in the study config): a seed-to-seed sd measured elsewhere, e.g. the
  oracle's noise floor in `bench/oracle.py` (cycle 1 here: gain 0.026, forgetting 0.024).

Comparisons between two trials of one study share the base model's evaluation, so only the
after-update evaluations enter a difference's error; a value's own error against the base would
add the base's. A difference counts as within noise when it is smaller than twice its standard
error (about 95% two-sided).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recipe_opt.evaluate import PRIMARY_METRIC
from recipe_opt.registry import OBJECTIVES

__all__ = ["Spread", "TaskMove", "suite_sampling", "task_moves", "value_spread", "within_noise"]

# A difference below this many standard errors of itself is "within noise" (two-sided ~95%).
WITHIN_NOISE_SDS = 2.0


@dataclass(frozen=True)
class Spread:
    """The uncertainty of one objective's value of one run."""

    seed: float | None = None  # seed-to-seed sd (re-runs or declared)
    seed_source: str | None = None  # "re-runs (3 seeds)", "declared: <source>"
    sampling: float | None = None  # the eval's binomial sd of the (after-update) score
    items: tuple[int, int] | None = None  # fewest and most items per task scored
    computed: bool = False  # a value computed from the recipe (cost): no noise

    @property
    def sd(self) -> float | None:
        """Seed and sampling sd combined (independent), or None where neither is known."""
        parts = [p for p in (self.seed, self.sampling) if p is not None]
        return math.sqrt(sum(p * p for p in parts)) if parts else None

    def text(self) -> str:
        """`± 0.031 (seed sd 0.026, declared: ...; eval sampling 0.017, 22 to 300 items a task)`."""
        if self.computed:
            return "exact (computed from the recipe)"
        if self.sd is None:
            return "uncertainty unknown"
        parts = []
        if self.seed is not None:
            parts.append(f"seed sd {self.seed:.3f}, {self.seed_source}")
        if self.sampling is not None:
            parts.append(f"eval sampling {self.sampling:.3f}{_items_text(self.items)}")
        return f"± {self.sd:.3f} ({'; '.join(parts)})"


def _items_text(items: tuple[int, int] | None) -> str:
    if items is None:
        return ""
    lo, hi = items
    many = f"{lo} items a task" if lo == hi else f"{lo} to {hi} items a task"
    return f", {many}, steps of {1 / lo:.3f}"


def _binomial_var(metrics: Mapping[str, Any]) -> tuple[float, int] | None:
    p, n = metrics.get(PRIMARY_METRIC), metrics.get("n")
    if not isinstance(p, int | float) or not isinstance(n, int | float) or n < 1:
        return None
    p = min(max(float(p), 0.0), 1.0)
    return p * (1.0 - p) / float(n), int(n)


def suite_sampling(tasks: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> tuple[float, list[int]] | None:
    """The binomial sd of a suite's score (the mean of `names`' primary metric) and the item
    counts of its tasks; None when a task's item count was not recorded."""
    parts = [_binomial_var(tasks.get(t) or {}) for t in names]
    if not names or any(p is None for p in parts):
        return None
    known = [p for p in parts if p is not None]
    return math.sqrt(sum(v for v, _ in known)) / len(names), [n for _, n in known]


def value_spread(
    objective: str,
    tasks_after: Mapping[str, Mapping[str, Any]],
    *,
    new_tasks: Sequence[str],
    retention: Mapping[str, tuple[Sequence[str], float]],
    seed_sd: float | None = None,
    seed_source: str | None = None,
) -> Spread:
    """The uncertainty of `objective` of one run whose tasks scored `tasks_after`.

    `retention` maps each retention suite to (its tasks, its weight in the aggregate forgetting).
    """
    if OBJECTIVES[objective].deterministic:
        return Spread(computed=True)
    items: list[int] = []
    sampling: float | None
    if objective == "gain":
        got = suite_sampling(tasks_after, new_tasks)
        sampling = None if got is None else got[0]
        items = [] if got is None else got[1]
    else:  # forgetting: the weighted mean of the retention suites' drops
        total = sum(w for _, w in retention.values())
        var = 0.0
        sampling = None
        for tasks, weight in retention.values():
            got = suite_sampling(tasks_after, tasks)
            if got is None or not total:
                break
            var += (weight / total * got[0]) ** 2
            items += got[1]
        else:
            sampling = math.sqrt(var) if retention else None
    span = (min(items), max(items)) if items and sampling is not None else None
    return Spread(seed_sd, seed_source if seed_sd is not None else None, sampling, span)


def within_noise(difference: float, a: Spread, b: Spread) -> bool | None:
    """Whether `difference` between two runs' values is within twice its standard error (None:
    neither run's uncertainty is known)."""
    if a.computed and b.computed:
        return False
    sds = [s.sd for s in (a, b) if s.sd is not None]
    if not sds:
        return None
    se = math.sqrt(sum(s * s for s in sds) * (2 / len(sds)))  # an unknown side counts as the known one
    return abs(difference) < WITHIN_NOISE_SDS * se


@dataclass(frozen=True)
class TaskMove:
    """One task's score before and after an update, and whether it moved the wrong way beyond noise."""

    task: str
    suite: str
    before: float
    after: float
    items: int | None
    se: float | None  # standard error of the change (two independent binomial samples)

    @property
    def change(self) -> float:
        return self.after - self.before

    @property
    def flagged(self) -> bool:
        """Fell by more than one standard error of the change and by at least two items.

        A flag asks a reviewer to look, not a gate: one standard error (one-sided, ~84%) catches
        a real loss on a small task (22 items: 0.227 -> 0.091 is 1.3 standard errors) at the
        price of some false alarms; the two-item floor keeps a single item's flip on a task near
        0 or 1 (where the binomial error is tiny) from raising one.
        """
        if self.change >= 0 or self.se is None or not self.items:
            return False  # no item count recorded: "beyond noise" cannot be judged (the change is still shown)
        drop = -self.change
        return drop > self.se and drop > 1.5 / self.items


def task_moves(
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    suites: Mapping[str, Sequence[str]],
) -> list[TaskMove]:
    """Each task of `suites` scored on both sides: its primary metric before and after (higher is
    better, as for every `acc`), with the change's standard error where item counts are known."""
    out = []
    for suite, tasks in suites.items():
        for task in tasks:
            b, a = before.get(task) or {}, after.get(task) or {}
            if not isinstance(b.get(PRIMARY_METRIC), int | float) or not isinstance(a.get(PRIMARY_METRIC), int | float):
                continue
            vb, va = _binomial_var(b), _binomial_var(a)
            se = math.sqrt(vb[0] + va[0]) if vb is not None and va is not None else None
            n = va[1] if va is not None else (vb[1] if vb is not None else None)
            out.append(TaskMove(task, suite, float(b[PRIMARY_METRIC]), float(a[PRIMARY_METRIC]), n, se))
    return out
