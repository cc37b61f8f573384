"""Selection policies: how the recipe to apply is picked from the feasible Pareto front.

Each policy scores the front's members (higher is better) from their objective values; ties go
to the cheaper recipe, then the earlier trial (the study's selection owns that rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from recipe_opt.registry._base import Registry
from recipe_opt.registry._objectives import OBJECTIVES

__all__ = ["POLICIES", "Policy", "scaled"]

Rows = Sequence[Mapping[str, float]]
ScoreFn = Callable[[Rows, Sequence[str], Mapping[str, float]], list[float]]


@dataclass(frozen=True)
class Policy:
    name: str
    rule: str  # one sentence, stored with every selection and shown in reports
    score: ScoreFn  # (rows, objectives, weights) -> one score per row
    weighted: bool = False  # its rule depends on `selection.weights` (the record then shows them)


def scaled(rows: Rows, objectives: Sequence[str]) -> list[dict[str, float]]:
    """Each objective mapped to [0, 1] over `rows`, oriented so that 1 is best."""
    out: list[dict[str, float]] = [{} for _ in rows]
    for o in objectives:
        vals = [r[o] for r in rows]
        lo, hi = min(vals), max(vals)
        for i, v in enumerate(vals):
            x = 0.5 if hi == lo else (v - lo) / (hi - lo)
            out[i][o] = x if OBJECTIVES[o].maximize else 1.0 - x
    return out


def _gain(rows: Rows, objectives: Sequence[str], weights: Mapping[str, float]) -> list[float]:
    return [r["gain"] for r in rows]


def _knee(rows: Rows, objectives: Sequence[str], weights: Mapping[str, float]) -> list[float]:
    return [-math.sqrt(sum((1.0 - x[o]) ** 2 for o in objectives)) for x in scaled(rows, objectives)]


def _utility(rows: Rows, objectives: Sequence[str], weights: Mapping[str, float]) -> list[float]:
    return [sum(weights.get(o, 0.0) * x[o] for o in objectives) for x in scaled(rows, objectives)]


# The first entry is the default.
POLICIES: Registry[Policy] = Registry(
    "selection policy",
    [
        Policy(
            "gain-within-gates",
            "the feasible Pareto trial (all release gates pass) with the highest gain; ties: lower cost",
            _gain,
        ),
        Policy(
            "knee",
            "the feasible Pareto trial closest to the ideal point, each objective scaled to [0, 1] over "
            "the feasible front (the front's knee: the best compromise)",
            _knee,
        ),
        Policy(
            "utility",
            "the feasible Pareto trial with the highest weighted sum of objectives scaled to [0, 1] over the front",
            _utility,
            weighted=True,
        ),
    ],
)
