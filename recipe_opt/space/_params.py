"""The table of a search space's scalar parameters: one `Param` per parameter, and nowhere else.

Each entry says what the parameter's values must be (kind, bounds), where its value lives in a
`Recipe`, its default and help text in the file, and what the informed design prefers for it.
Validation, `SpaceFile`'s defaults and descriptions, `SearchSpace.sample` and its inverse
(`params_for`, `transfer`), the informed design and `describe` all read this table. The mixture
is not in it: its weights are many parameters (`mix.<source>`), handled by `SearchSpace`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.space._specs import Scalar

__all__ = ["LISTED", "PARAM", "PARAMS", "Kind", "Param", "build_recipe"]

# What every value of a parameter must be: a number (an integer for "int"), or a name ("str"),
# which can be chosen or pinned but never be a range.
Kind = Literal["float", "int", "str"]

_CAST: dict[str, Callable[[Any], Scalar]] = {"float": float, "int": int, "str": str}

# The parts of a Recipe that parameters live in, by the Recipe's attribute name.
_PARTS: dict[str, Callable[..., Any]] = {"replay": Replay, "schedule": Schedule, "adapter": Adapter, "budget": Budget}


@dataclass(frozen=True)
class Param:
    """One scalar parameter of the search space."""

    name: str  # key in the file, and the Optuna parameter's name
    kind: Kind
    # Inclusive bounds every value in the file must lie in (None for names). These are sanity
    # bounds for a file, inside the Recipe's own invariants: a typo such as `peak_lr: 3` is an
    # error up front rather than a diverged trial.
    bounds: tuple[float, float] | None
    at: tuple[str, str]  # where the value lives in a Recipe: (part, field), e.g. ("adapter", "rank")
    help: str  # the file schema's description
    default: Scalar | None = None  # the pinned value when the file leaves it out; None: the file must give it
    prefer: tuple[Scalar, ...] = ()  # informed design: pin to the first of these the space allows
    # The value names an entry of `target_module_sets`; the Recipe holds that entry's modules.
    names_set: bool = False

    def get(self, recipe: Recipe) -> Any:
        """The value at this parameter's place in `recipe`, as the Recipe holds it."""
        part, field = self.at
        return getattr(getattr(recipe, part), field)

    def recipe_value(self, value: Scalar, sets: Mapping[str, Sequence[str]]) -> Any:
        """What the Recipe holds for a drawn `value`."""
        if self.names_set:
            return tuple(sets[str(value)])
        return _CAST[self.kind](value)

    def value_in(self, recipe: Recipe, sets: Mapping[str, Sequence[str]]) -> Any:
        """The parameter's value for `recipe` (inverse of `recipe_value`); None if no set matches."""
        held = self.get(recipe)
        if self.names_set:
            return next((k for k, mods in sets.items() if tuple(mods) == held), None)
        return held


# In the order of the suggest calls in `SearchSpace.sample` (which is the Recipe's own field
# order): the recipes a seed gives depend on it, so entries are not to be reordered.
PARAMS: tuple[Param, ...] = (
    Param(
        "replay_ratio",
        "float",
        # A Recipe allows any 0 <= ratio < 1 (recipe.Replay checks that, and data/_sampler.py checks
        # it again where batches are drawn); this is the space's own, tighter bound. A file states a
        # closed range, whose top must stay below 1, and above 0.95 an update trains on fewer than
        # one new example in twenty: a range reaching further spends trials on updates that learn
        # next to nothing new.
        (0.0, 0.95),
        ("replay", "ratio"),
        "Share of each batch replayed.",
    ),
    Param("peak_lr", "float", (1e-7, 1.0), ("schedule", "peak_lr"), "Peak learning rate."),
    Param(
        "warmup_fraction",
        "float",
        (0.0, 0.9),
        ("schedule", "warmup_fraction"),
        "Share of the update's steps spent warming the learning rate up.",
        default=0.05,
        prefer=(0.05,),
    ),
    Param(
        "schedule",
        "str",
        None,
        ("schedule", "shape"),
        "Shape of the learning-rate schedule (a `transformers.get_scheduler` name).",
        default="cosine",
        prefer=("cosine",),
    ),
    Param("weight_decay", "float", (0.0, 1.0), ("schedule", "weight_decay"), "AdamW weight decay.", default=0.0),
    Param("lora_rank", "int", (1, 4096), ("adapter", "rank"), "LoRA rank r.", prefer=(16, 8)),
    Param(
        "lora_alpha_ratio",
        "float",
        (1e-3, 1e3),
        ("adapter", "alpha_ratio"),
        "LoRA alpha over rank (alpha = ratio * r).",
        default=2.0,
        prefer=(2.0,),
    ),
    Param(
        "target_modules",
        "str",
        None,
        ("adapter", "target_modules"),
        "Name of the `target_module_sets` entry whose modules get LoRA adapters.",
        default="all_linear",
        prefer=("all_linear",),
        names_set=True,
    ),
    Param("lora_dropout", "float", (0.0, 0.9), ("adapter", "dropout"), "Dropout on the LoRA branch.", default=0.0),
    Param("steps", "int", (1, 10**9), ("budget", "steps"), "Optimiser steps of the full update."),
    Param("batch_size", "int", (1, 10**6), ("budget", "batch_size"), "Sequences per optimiser step.", default=32),
)

PARAM: Mapping[str, Param] = {p.name: p for p in PARAMS}

# `recipe-opt validate` lists (and checks) the numbers first, then the names: the order it has
# always printed.
LISTED: tuple[Param, ...] = tuple(sorted(PARAMS, key=lambda p: p.kind == "str"))


def build_recipe(mixture: Mixture, values: Mapping[str, Any], *, seed: int) -> Recipe:
    """The Recipe holding `values` (parameter name -> value as the Recipe holds it) at each place."""
    kwargs: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
    for p in PARAMS:
        part, field = p.at
        kwargs[part][field] = values[p.name]
    return Recipe(mixture=mixture, seed=seed, **{part: make(**kwargs[part]) for part, make in _PARTS.items()})
