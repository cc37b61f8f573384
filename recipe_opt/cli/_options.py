"""Options the study commands share (search, prepare, worker), each with its help once."""

from __future__ import annotations

from typing import Annotated

import typer

from recipe_opt.registry import SAMPLERS

__all__ = [
    "BudgetOption",
    "EarlyStoppingOption",
    "MaxCostOption",
    "NTrialsOption",
    "SamplerOption",
    "TimeoutOption",
    "WarmStartOption",
    "WarmStartPriorsOption",
]

SamplerOption = Annotated[
    str | None, typer.Option(help=f"Override the config's sampler: {', '.join(SAMPLERS.names())}.")
]
EarlyStoppingOption = Annotated[
    bool | None, typer.Option("--early-stopping/--no-early-stopping", help="Override rung-based early stopping.")
]
TimeoutOption = Annotated[float | None, typer.Option(min=1, help="Stop starting trials after this many seconds.")]
BudgetOption = Annotated[
    str | None,
    typer.Option(
        "--budget",
        help="What the search may spend besides the update it chooses: a share of one full update (0.25x), "
        "TFLOP (40 TFLOP) or hours of training (0.5 gpu-hours). Screens, promotes and trains the finalist in "
        "full (multi_fidelity); `apply` then reuses that run. Overrides trials.budget.",
    ),
]
MaxCostOption = Annotated[
    float | None,
    typer.Option("--max-cost", min=0, help="Stop once the study's summed proxy compute passes this many TFLOP."),
]
NTrialsOption = Annotated[
    int | None,
    typer.Option("--n-trials", min=1, help="Total finished trials the study is to reach (overrides the config)."),
]
WarmStartOption = Annotated[
    list[str] | None,
    typer.Option(
        "--warm-start",
        help="Seed a new study from earlier cycles: `auto` (the cycle that produced the base version), "
        "a study name (repeatable), or `none`. Overrides the config's warm_start.studies.",
    ),
]
WarmStartPriorsOption = Annotated[
    bool | None,
    typer.Option(
        "--warm-start-priors/--no-warm-start-priors",
        help="Also add the source studies' complete trials as prior observations for the sampler.",
    ),
]
