"""What one trial of a space will cost and take, before any trial runs (issue 16, item 8).

`project` measures a real proxy step at the space's costliest corner (the top of `steps` and
`lora_rank`, the largest target set; the lowest LR, so the probe does not diverge) and scales it
over the space with the trainer's own FLOP count (`train.flops_per_token`: 4N + 6n per token)
and the adapter sizes of every target set (`train.lora_params`, from the model's shapes).
`validate` and the start of `search` show it; `Projection.problems` refuses a space whose single
trial would spend more than the study's `max_cost`, run longer than its `timeout`, or train its
proxy for more than a day (`steps: 1000000000` would have started 250,000,000 proxy steps).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from recipe_opt.config import StudyConfig
from recipe_opt.exceptions import ConfigProblem
from recipe_opt.recipe import Budget
from recipe_opt.space import SearchSpace
from recipe_opt.study._setup import Setup
from recipe_opt.train import StepProbe, flops_per_token, lora_params, probe_step

__all__ = ["MAX_TRIAL_SECONDS", "Projection", "project"]

# A proxy that trains for a day is no longer a proxy of an update: refused without a budget.
MAX_TRIAL_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Projection:
    """Per-trial figures at the cheapest and the costliest end of the space: (low, high)."""

    probe: StepProbe
    steps: tuple[int, int]  # the recipe's full-update steps
    proxy_steps: tuple[int, int]
    proxy_tflop: tuple[float, float]
    proxy_seconds: tuple[float, float]  # training only (evaluation comes on top)
    full_tflop: tuple[float, float]
    full_seconds: tuple[float, float]
    corner: dict[str, Any]  # the costliest corner's cost-driving parameters, as the space names them

    def lines(self) -> list[str]:
        p = self.probe
        return [
            f"projected per trial, from a measured proxy step ({p.seconds_per_step:.3g} s for {p.batch_size} "
            f"sequences of {p.tokens_per_sequence:.0f} tokens):",
            f"  proxy        {_span(self.proxy_steps, ',d')} steps, {_span(self.proxy_tflop, '.3g')} TFLOP, "
            f"~{_span(self.proxy_seconds, None)} of training",
            f"  full update  {_span(self.steps, ',d')} steps, {_span(self.full_tflop, '.3g')} TFLOP, "
            f"~{_span(self.full_seconds, None)} of training",
            f"  measured at the costliest end of the space: {_corner(self.corner)}",
        ]

    def problems(self, space: SearchSpace, *, max_cost: float | None, timeout: float | None) -> list[ConfigProblem]:
        """Why one trial at the costliest end of the space does not fit, one problem per budget."""
        where = f"one trial at {_corner(self.corner)} ({self.proxy_steps[1]:,} proxy steps)"
        cost, seconds = self.proxy_tflop[1], self.proxy_seconds[1]
        out: list[str] = []
        if max_cost is not None and cost > max_cost:
            out.append(
                f"{where} would spend {cost:.3g} TFLOP of proxy compute, more than the study's whole "
                f"max_cost of {max_cost:g} TFLOP: lower `steps` (or `proxy.fraction`), or raise max_cost"
            )
        if timeout is not None and seconds > timeout:
            out.append(
                f"{where} would train for ~{_duration(seconds)}, longer than the study's whole timeout of "
                f"{_duration(timeout)}: lower `steps` (or `proxy.fraction`), or raise the timeout"
            )
        if seconds > MAX_TRIAL_SECONDS:
            out.append(
                f"{where} would train for ~{_duration(seconds)} at the measured step: a proxy must be a small "
                f"fraction of an update, and no trial may train for more than {_duration(MAX_TRIAL_SECONDS)}; "
                "lower `steps` (or `proxy.fraction`)"
            )
        return [ConfigProblem(space.source_file, "steps", m) for m in out]


def project(cfg: StudyConfig, space: SearchSpace, setup: Setup) -> Projection:
    """Measure a proxy step at the space's costliest corner and project every trial's cost."""
    trainer, model = setup.trainer, setup.base.model
    settings = trainer.settings
    sets = space.spec.target_module_sets
    steps = _ints(space.extremes("steps"))
    ranks = _ints(space.extremes("lora_rank"))
    batches = _ints(space.extremes("batch_size"))
    # Adapter parameters per unit of rank of each target set the space can choose.
    unit = {str(n): lora_params(model, 1, sets[str(n)]) for n in space.extremes("target_modules")}
    per_rank = sorted(unit.values())
    top_set = max(unit, key=unit.__getitem__)
    corner = {"steps": steps[1], "lora_rank": ranks[1], "target_modules": top_set}
    recipe = space.sample(_Corner(sets, top_set), seed=cfg.seed)
    probe = probe_step(trainer, recipe)
    frozen = probe.frozen_params
    per_token = (flops_per_token(frozen, ranks[0] * per_rank[0]), flops_per_token(frozen, ranks[1] * per_rank[-1]))
    measured = flops_per_token(frozen, probe.trainable_params)  # the probe's recipe: the costliest end

    def proxy_steps(n: int) -> int:
        return settings.proxy_steps(dataclasses.replace(recipe, budget=Budget(n, recipe.budget.batch_size)))

    psteps = (proxy_steps(steps[0]), proxy_steps(steps[1]))
    tokens = probe.tokens_per_sequence
    proxy_tflop = tuple(f * n * probe.batch_size * tokens / 1e12 for f, n in zip(per_token, psteps, strict=True))
    full_tflop = tuple(f * n * b * tokens / 1e12 for f, n, b in zip(per_token, steps, batches, strict=True))
    # A step's time scales with its FLOP (same sequences) and its batch (full updates run theirs).
    step_s = probe.seconds_per_step
    proxy_seconds = tuple(step_s * n * f / measured for f, n in zip(per_token, psteps, strict=True))
    full_seconds = tuple(
        step_s * n * (b / probe.batch_size) * f / measured for f, n, b in zip(per_token, steps, batches, strict=True)
    )
    return Projection(
        probe=probe,
        steps=steps,
        proxy_steps=psteps,
        proxy_tflop=_pair(proxy_tflop),
        proxy_seconds=_pair(proxy_seconds),
        full_tflop=_pair(full_tflop),
        full_seconds=_pair(full_seconds),
        corner=corner,
    )


class _Corner:
    """Answers a space's suggest calls with its costliest values: the top of every integer range
    (steps, rank), the bottom of every float range (the LR among them: the probe must not
    diverge), the largest numeric choice, and the largest target set."""

    def __init__(self, sets: dict[str, list[str]], top_set: Any) -> None:
        self.sets, self.top_set = sets, top_set

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return low + (high - low) // step * step

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name == "target_modules":
            return self.top_set
        numeric = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
        return max(numeric) if len(numeric) == len(choices) else choices[0]


def _ints(values: tuple[Any, ...]) -> tuple[int, int]:
    return int(min(values)), int(max(values))


def _pair(values: tuple[float, ...]) -> tuple[float, float]:
    return float(values[0]), float(values[1])


def _corner(c: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in c.items())


def _span(pair: tuple[Any, Any], spec: str | None) -> str:
    text = [_duration(v) if spec is None else format(v, spec) for v in pair]
    return text[0] if text[0] == text[1] else f"{text[0]}-{text[1]}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"
