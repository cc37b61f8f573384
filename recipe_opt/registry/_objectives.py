"""The objectives: name, direction, label, format, and how each value is computed.

A study optimises a subset of these (`objectives:` in its config, `gain` required). Every place
that needs an objective's direction, its axis label or its value reads it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from recipe_opt.registry._base import Registry

__all__ = ["OBJECTIVES", "Direction", "Objective", "ObjectiveInputs", "objective_values", "values_of"]

Direction = Literal["maximize", "minimize"]


class ObjectiveInputs(Protocol):
    """What an objective's value is computed from: one run of one recipe, scored."""

    @property
    def gain(self) -> float: ...

    @property
    def forgetting(self) -> float: ...

    @property
    def cost_tflops(self) -> float: ...


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Direction
    label: str  # axis and column label, with the direction's arrow
    help: str
    spec: str  # format spec of its values in tables
    compute: Callable[[ObjectiveInputs], float]
    # A count computed from the recipe (no seed or sampling noise): the reports give it no error
    # bar and no parameter importance (with a few dozen trials that would only say which
    # parameters happened to vary together).
    deterministic: bool = False

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def format(self, value: float) -> str:
        return format(value, self.spec)


OBJECTIVES: Registry[Objective] = Registry(
    "objective",
    [
        Objective(
            "gain",
            "maximize",
            "gain ↑",
            "new-task suite score after minus before",
            "+.3f",
            lambda m: m.gain,
        ),
        Objective(
            "forgetting",
            "minimize",
            "forgetting ↓",
            "weighted retention-suite score before minus after",
            "+.3f",
            lambda m: m.forgetting,
        ),
        Objective(
            "cost",
            "minimize",
            "cost TFLOP ↓",
            "FLOPs of the full update, in TFLOP (projected by a proxy, measured by a full run)",
            ".3g",
            lambda m: m.cost_tflops,
            deterministic=True,
        ),
    ],
)


def objective_values(inputs: ObjectiveInputs) -> dict[str, float]:
    """Every objective's value for one scored run (a study keeps all three, optimises its own)."""
    return {o.name: float(o.compute(inputs)) for o in OBJECTIVES}


def values_of(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The objective values stored in a metrics record (those present)."""
    return {o.name: float(metrics[o.name]) for o in OBJECTIVES if isinstance(metrics.get(o.name), int | float)}
