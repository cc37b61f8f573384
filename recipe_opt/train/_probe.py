"""What a trial will cost before the study spends anything: a few real training steps, timed.

`probe_step` runs the proxy trainer on one recipe for `steps` steps (its adapter is removed
afterwards, as after any trial) and keeps the time of a step and the length of a sequence;
`lora_params` counts the adapter's parameters for any rank and target set from the model's
shapes, so the projection covers the whole space from one measured recipe.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recipe_opt.recipe import Recipe
from recipe_opt.train._proxy import EarlyStop, ProxyTrainer, TrainResult, TrialInterrupted
from recipe_opt.train._targets import linear_layers

__all__ = ["StepProbe", "lora_params", "probe_step"]


@dataclass(frozen=True)
class StepProbe:
    """A measured proxy step of one recipe."""

    seconds_per_step: float  # the median of the steps after the first (which allocates)
    tokens_per_sequence: float  # mean over the probe's batches (sequences are cut at max_seq_len)
    batch_size: int  # sequences per proxy step
    trainable_params: int  # of the probed recipe's adapter
    frozen_params: int  # the base model's, embeddings excluded


def lora_params(model: Any, rank: int, targets: Sequence[str]) -> int:
    """Parameters of a LoRA adapter of `rank` on `targets` (peft matches targets as name
    suffixes): r x (in + out) per adapted layer, the A and B matrices."""
    names = set(linear_layers(model))
    total = 0
    for name, module in model.named_modules():
        if name in names and any(name == t or name.endswith("." + t) for t in targets):
            total += rank * sum(module.weight.shape[:2])  # Linear (out, in); Conv1D (in, out)
    return total


def probe_step(trainer: ProxyTrainer, recipe: Recipe, *, steps: int = 4) -> StepProbe:
    """Train `recipe` for `steps` proxy steps (at least 2) and measure them.

    The recipe's own length does not matter: the run is stopped after `steps` (the proxy of any
    recipe runs at least `min_steps`, and a probe needs no more).
    """
    steps = max(2, steps)
    stamps: list[float] = []

    def tick(done: int, total: int, loss: float) -> None:
        stamps.append(time.perf_counter())

    def stop(step: int, model: Any, result: TrainResult) -> None:
        raise EarlyStop("probe done")

    result: TrainResult
    try:
        with trainer.train(recipe, progress=tick, rungs={steps: stop}) as (_, result):
            pass  # a proxy shorter than `steps`: it ran whole
    except TrialInterrupted as exc:  # stopped by the probe (or diverged: its steps still count)
        result = exc.result
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    done = max(1, result.proxy_steps)
    return StepProbe(
        seconds_per_step=statistics.median(gaps) if gaps else result.train_seconds / done,
        tokens_per_sequence=result.tokens_seen / (done * trainer.settings.batch_size),
        batch_size=trainer.settings.batch_size,
        trainable_params=result.trainable_params,
        frozen_params=result.frozen_params,
    )
