"""The release gates: one definition for the search, the front, selection, `apply` and reports.

Every gate is an upper bound on a measured drop or cost, or a lower bound on the gain; its
constraint value is measured minus bound (bound minus measured for the gain; both less a 1e-9
tolerance for float rounding), so <= 0 passes, as Optuna's `trial.set_constraint` wants it:

| gate | measured | passes when |
|---|---|---|
| `regression:<suite>` | drop of each retention suite | <= its `max_forgetting_per_suite` bound, else `max_forgetting` |
| `max_forgetting` | weighted aggregate drop | <= `max_forgetting` |
| `new_task:<task>` | drop of each new task below its base score | <= `max_new_task_drop` |
| `min_gain` | new-task suite gain | >= `min_gain`; unset: > 0 (an update must teach something) |
| `max_cost` | TFLOP of the full update | <= `max_cost` |

A proxy trial is judged on its values (cost projected), `apply` on the full run against the
parent (cost measured): the same gates on the same kind of numbers, so the search never selects
a recipe whose values the release would reject. A gate without a bound passes and sets no
constraint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recipe_opt.config import GatesConfig

__all__ = ["GateCheck", "Scored", "check_gates", "constraints", "failed_reason", "gate_values"]

# Scores are means over 0/1 items, so a drop equal to its bound comes out of float arithmetic a
# hair either side of it (1.0 - 0.95 = 0.05000000000000004): "at most the bound" allows that
# rounding. And "gain > 0" becomes 1e-9 - gain <= 0. Exact-match scores move in steps of
# 1/items (0.0016 on a 614-item suite), so 1e-9 parts only rounding from a real difference.
TOLERANCE = 1e-9
STRICT_MARGIN = 1e-9


@dataclass(frozen=True)
class Scored:
    """What the gates read from one run of one recipe, against the model it updates."""

    values: Mapping[str, float]  # gain, forgetting, cost (TFLOP)
    forgetting_per_suite: Mapping[str, float]
    new_task_scores: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # task -> (before, after)
    proxy_tflops: float = 0.0  # what the run spent (a re-run's share of the search's price); no gate reads it


@dataclass(frozen=True)
class GateCheck:
    gate: str
    measured: float
    bound: float | None
    passed: bool
    note: str
    constraint: float | None = None  # measured - bound (<= 0 passes); None: no bound set

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "measured": self.measured,
            "bound": self.bound,
            "passed": self.passed,
            "note": self.note,
        }


def _upper(gate: str, measured: float, bound: float | None, note: str) -> GateCheck:
    if bound is None:
        return GateCheck(gate, measured, None, True, note)
    c = measured - bound - TOLERANCE
    return GateCheck(gate, measured, bound, c <= 0, note + f" (bound {bound:g})", c)


def check_gates(
    gates: GatesConfig,
    scored: Scored,
    *,
    against: str = "the base",
    suites: Sequence[str] | None = None,
    cost: str = "projected full-update compute",
) -> list[GateCheck]:
    """Every gate on one run: per retention suite, aggregate, per new task, gain, cost.

    `suites` lists the retention suites to bound (default: those in `scored`); a suite that was
    not measured is not checked.
    """
    checks = []
    for suite in suites if suites is not None else list(scored.forgetting_per_suite):
        if suite not in scored.forgetting_per_suite:
            continue
        drop = scored.forgetting_per_suite[suite]
        bound = gates.max_forgetting_per_suite.get(suite, gates.max_forgetting)
        checks.append(_upper(f"regression:{suite}", drop, bound, f"{suite} {drop:+.3f} vs {against}"))
    f = scored.values["forgetting"]
    checks.append(_upper("max_forgetting", f, gates.max_forgetting, f"aggregate forgetting {f:+.3f}"))
    for task, (before, after) in scored.new_task_scores.items():
        drop = before - after
        note = f"new task {task} {before:.3f} -> {after:.3f} (drop {drop:+.3f})"
        checks.append(_upper(f"new_task:{task}", drop, gates.max_new_task_drop, note))
    gain = scored.values["gain"]
    note = f"new-task gain {gain:+.3f}"
    if gates.min_gain is None:
        c = STRICT_MARGIN - gain
        checks.append(GateCheck("min_gain", gain, None, c <= 0, note, c))
    else:
        c = gates.min_gain - gain - TOLERANCE
        checks.append(GateCheck("min_gain", gain, gates.min_gain, c <= 0, note, c))
    if "cost" in scored.values:
        value = scored.values["cost"]
        checks.append(_upper("max_cost", value, gates.max_cost, f"{cost} {value:.3g} TFLOP"))
    return checks


def constraints(checks: Sequence[GateCheck]) -> dict[str, float]:
    """The Optuna constraints of a trial (gates without a bound set none)."""
    return {c.gate: c.constraint for c in checks if c.constraint is not None}


def failed_reason(c: GateCheck) -> str:
    """One line for a failed gate, as the release decision records it."""
    if c.gate == "min_gain":
        return f"{c.note} is below the bound {0.0 if c.bound is None else c.bound:g}"
    return f"{c.note} exceeds the bound"


def gate_values(
    values: Mapping[str, float],
    per_suite: Mapping[str, float],
    gates: GatesConfig,
    new_task_scores: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, float]:
    """The Optuna constraints of the gates on one run (measured - bound; <= 0 passes)."""
    return constraints(check_gates(gates, Scored(values, per_suite, new_task_scores or {})))
