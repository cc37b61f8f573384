"""A search under a budget (`trials.budget`): screen cheaply, promote by Pareto rank, continue,
train the finalists in full, and let `apply` reuse the pick's full run.

    budget (0.25x | TFLOP | gpu-hours) -> `plan_ladder`: how many screens fit, how many per rung
      -> rung 0: the sampler's trials, each a cheap screen (`multi_fidelity.screen`)
      -> rung k: the best of rung k-1 by Pareto rank (`promotion_order`), continued from their
         saved state (a compressed screen cannot be: its first rung starts afresh)
      -> the last rung: the finalists trained to the end of their own schedule, which is a full
         update; selection judges each recipe by its highest-fidelity run (`StudyRecord.front`)

The budget is what the search spends *besides* the update it chooses: the pick's full run is that
update (`apply` reuses it), so a budget of 0.25x means that everything else, screens, promotions
and any other finalist, costs at most a quarter of one full update. The plan counts in units of
the update at the middle of the space's projected range (`Projection.full_tflop`); the study
records what was actually spent, and `search_price` states it against the pick's own update.

Promotion follows MOASHA (arXiv 2106.12639): non-dominated sorting of the rung's trials, and
within a front an epsilon-net (the next trial is the one farthest from those already taken, in
objective space scaled to [0, 1]), so a rung keeps the front's spread rather than the best gain
and its neighbours. Trials that pass the gates come first; the rest by how far they missed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from recipe_opt.config import MultiFidelityConfig, SearchBudget, StudyConfig
from recipe_opt.exceptions import ConfigError
from recipe_opt.registry import OBJECTIVES

__all__ = ["LadderPlan", "Rung", "plan_ladder", "promotion_order", "study_plan"]


@dataclass(frozen=True)
class Rung:
    """One fidelity of the ladder: `count` trials, each trained to `share` of its full steps."""

    index: int
    kind: str  # "compressed" (a squeezed schedule) or "prefix" (the full schedule's first steps)
    share: float  # of the full update's steps reached at this rung (1.0: the full update)
    count: int
    cost: float  # planned compute of one trial at this rung, in full updates (its increment only)
    anneal: float = 0.0  # share of the full steps of the annealing branch it is scored after

    @property
    def full(self) -> bool:
        return self.share >= 1.0

    def label(self) -> str:
        if self.index == 0:
            return f"screen ({self.kind}, {self.share:g} of the steps)"
        return "full update" if self.full else f"rung {self.index} ({self.share:g} of the steps)"


@dataclass(frozen=True)
class LadderPlan:
    budget: str
    unit_tflop: float  # one full update, the unit of the plan
    budget_tflop: float
    rungs: tuple[Rung, ...]

    @property
    def planned_tflop(self) -> float:
        """Everything the plan trains, the pick's full update included."""
        return sum(r.count * r.cost for r in self.rungs) * self.unit_tflop

    @property
    def overhead_tflop(self) -> float:
        """What the plan spends besides the pick's own full update (the budget's measure)."""
        return self.planned_tflop - self.unit_tflop

    def lines(self) -> list[str]:
        u = self.unit_tflop
        parts = ", ".join(f"{r.count} x {r.label()}" for r in self.rungs)
        return [
            f"budget {self.budget} = {self.budget_tflop:.3g} TFLOP besides the update itself (one full update "
            f"~ {u:.3g} TFLOP at the middle of the space)",
            f"  plan: {parts}; {self.overhead_tflop:.3g} TFLOP = {self.overhead_tflop / u:.2f}x besides the "
            "update, which `apply` reuses",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "unit_tflop": self.unit_tflop,
            "budget_tflop": self.budget_tflop,
            "rungs": [asdict(r) for r in self.rungs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LadderPlan:
        return cls(d["budget"], d["unit_tflop"], d["budget_tflop"], tuple(Rung(**r) for r in d["rungs"]))


def plan_ladder(
    mf: MultiFidelityConfig,
    budget: SearchBudget,
    *,
    unit_tflop: float,
    tflop_per_hour: float,
    proxy_batch: int,
    recipe_batch: int,
    max_screens: int | None = None,
    where: str = "trials.budget",
) -> LadderPlan:
    """The most screens the budget affords, with `ceil(n / eta)` promoted per rung (at least the
    finalists) and the finalists trained in full. Costs in full updates: a compressed screen of
    fraction f at batch b costs f * b / B (B the recipe's batch); a prefix screen f plus its
    annealing branch; rung k costs its share less the share its trials already trained (all of
    it after a compressed screen); the final run 1 less the last rung's share. The pick's full
    update (its screen if continued, its rungs, its final run: one update in all) is the update
    itself, not the budget's."""
    budget_tflop = {
        "updates": budget.amount * unit_tflop,
        "tflop": budget.amount,
        "hours": budget.amount * tflop_per_hour,
    }[budget.unit]
    allowance = budget_tflop / unit_tflop  # in full updates
    ratio = mf.screen_anneal / mf.screen_fraction if mf.screen == "prefix" else 0.0
    if mf.screen == "compressed":
        screen_batch = mf.screen_batch(proxy_batch)
        screen_cost = mf.screen_fraction * screen_batch / recipe_batch
    else:
        screen_cost = mf.screen_fraction + mf.screen_anneal
    shares = [*mf.rungs, 1.0]

    def rungs_for(n0: int) -> list[Rung]:
        out = [Rung(0, mf.screen, mf.screen_fraction, n0, screen_cost, mf.screen_anneal)]
        trained = mf.screen_fraction if mf.screen == "prefix" else 0.0  # what a promoted trial has already
        count = n0
        for i, share in enumerate(shares, start=1):
            full = share >= 1.0
            count = mf.finalists if full else max(mf.finalists, math.ceil(count / mf.eta))
            count = min(count, out[-1].count)
            anneal = 0.0 if full else share * ratio
            out.append(Rung(i, "prefix", share, count, share - trained + anneal, anneal))
            trained = share
        return out

    def overhead(n0: int) -> float:
        return sum(r.count * r.cost for r in rungs_for(n0)) - 1.0

    n0 = mf.min_screens
    if overhead(n0) > allowance + 1e-9:
        need = overhead(n0) * unit_tflop
        raise ConfigError.single(
            where,
            "",
            f"budget {budget} ({budget_tflop:.3g} TFLOP besides the update) does not cover the smallest plan: "
            f"{mf.min_screens} screens, their promotions and {mf.finalists} finalist(s) in full need {need:.3g} "
            f"TFLOP ({overhead(n0):.2f}x of a {unit_tflop:.3g} TFLOP update): raise the budget or lower "
            "`multi_fidelity.screen_fraction`",
        )
    while (max_screens is None or n0 < max_screens) and overhead(n0 + 1) <= allowance + 1e-9:
        n0 += 1
    return LadderPlan(str(budget), unit_tflop, budget_tflop, tuple(rungs_for(n0)))


def study_plan(cfg: StudyConfig, space: Any, projection: Any, *, n_trials: int | None = None) -> LadderPlan:
    """`cfg`'s budget planned over `space` (a resolved `SearchSpace`) from a measured `Projection`:
    one full update is the middle of its projected range, and an hour of training is what the
    probe's measured step does in an hour on this device."""
    budget = cfg.trials.search_budget
    if budget is None:
        raise ValueError("`trials.budget` is not set")
    p = projection
    unit = (p.full_tflop[0] + p.full_tflop[1]) / 2
    per_hour = p.proxy_tflop[1] / p.proxy_seconds[1] * 3600 if p.proxy_seconds[1] else 0.0
    return plan_ladder(
        cfg.multi_fidelity,
        budget,
        unit_tflop=unit,
        tflop_per_hour=per_hour,
        proxy_batch=cfg.proxy.batch_size,
        recipe_batch=int(max(space.extremes("batch_size"))),
        max_screens=n_trials or cfg.trials.n_trials,
        where=f"{cfg.config_path}: trials.budget" if cfg.config_path else "trials.budget",
    )


def _fronts(
    items: Sequence[Any], values: Callable[[Any], dict[str, float]], objectives: Sequence[str]
) -> list[list[Any]]:
    """Non-dominated sorting: the first front, then the front of what is left, and so on."""
    from recipe_opt.study._records import dominates

    left = list(items)
    fronts: list[list[Any]] = []
    while left:
        front = [t for t in left if not any(dominates(values(o), values(t), objectives) for o in left if o is not t)]
        fronts.append(front)
        left = [t for t in left if t not in front]
    return fronts


def promotion_order(
    items: Sequence[Any],
    values: Callable[[Any], dict[str, float]],
    objectives: Sequence[str],
    *,
    feasible: Callable[[Any], bool],
    excess: Callable[[Any], float],
) -> list[Any]:
    """`items` in the order a rung promotes them: feasible ones front by front, each front as an
    epsilon-net (first its best gain, then each time the one farthest from those taken, objectives
    scaled to [0, 1]); then infeasible ones by how far they missed the gates (`excess`)."""
    ok = [t for t in items if feasible(t)]
    scale = {}
    for o in objectives:
        xs = [values(t)[o] for t in items]
        lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        scale[o] = (lo, hi - lo or 1.0)

    def point(t: Any) -> list[float]:
        return [(values(t)[o] - scale[o][0]) / scale[o][1] for o in objectives]

    order: list[Any] = []
    for front in _fronts(ok, values, objectives):
        left = sorted(front, key=lambda t: -_signed(values(t), "gain"))
        taken = [left.pop(0)]
        while left:
            far = max(left, key=lambda t: min(math.dist(point(t), point(s)) for s in taken + order))
            left.remove(far)
            taken.append(far)
        order += taken
    order += sorted((t for t in items if not feasible(t)), key=excess)
    return order


def _signed(values: dict[str, float], name: str) -> float:
    """An objective's value with larger always better."""
    v = values.get(name, 0.0)
    return v if name not in OBJECTIVES or OBJECTIVES[name].maximize else -v
