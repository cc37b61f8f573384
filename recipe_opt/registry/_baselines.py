"""Baseline recipes: the defaults a user would reach for instead of a search, each named once.

A study's `baselines:` lists these names (besides `current`, the recipe that made the base
version, and paths to recipe files); `apply` trains each beside the pick at full fidelity and
the release checklist shows the pick against them. Each baseline takes the pick's budget
(steps, batch) and data mixture, so only what a user would copy from the tool differs: its LoRA
and schedule defaults, with no replay (neither tool replays old data by default).

The defaults as the tools ship them (anchors: "fine-tuning frameworks ship fixed defaults"):
LLaMA-Factory rank 8, alpha 2r, dropout 0, all linear layers, LR 1e-4, cosine, warmup 10%;
litgpt r=8, alpha=16, dropout 0.05, query and value only, LR 3e-4, 100 warmup steps then cosine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from recipe_opt.recipe import Adapter, Recipe, Replay, Schedule
from recipe_opt.registry._base import Registry

__all__ = ["BASELINES", "CURRENT", "Baseline", "ModuleSets"]

# The resolved module sets a baseline may name, from the model: "all-linear" (every linear
# layer of the blocks) and "query-value" (the attention's query and value projections, or its
# fused qkv projection where the model has one).
ModuleSets = Mapping[str, Sequence[str]]
CURRENT = "current"  # the recipe that made the study's base version (from the lineage)


@dataclass(frozen=True)
class Baseline:
    name: str
    source: str  # where the defaults come from, for the checklist
    build: Callable[[Recipe, ModuleSets], Recipe]


def _llama_factory(pick: Recipe, sets: ModuleSets) -> Recipe:
    return replace(
        pick,
        replay=Replay(0.0),
        schedule=Schedule(1e-4, 0.1, "cosine"),
        adapter=Adapter(8, 2.0, tuple(sets["all-linear"]), 0.0),
    )


def _litgpt(pick: Recipe, sets: ModuleSets) -> Recipe:
    return replace(
        pick,
        replay=Replay(0.0),
        schedule=Schedule(3e-4, min(1.0, 100 / pick.budget.steps), "cosine"),
        adapter=Adapter(8, 2.0, tuple(sets["query-value"]), 0.05),
    )


BASELINES: Registry[Baseline] = Registry(
    "baseline",
    [
        Baseline("llama-factory", "LLaMA-Factory's LoRA defaults", _llama_factory),
        Baseline("litgpt", "litgpt's LoRA defaults", _litgpt),
    ],
)
