"""What a study tells about its progress, and to whom: the `Reporter` protocol (the command line
renders it with rich), and the one-line `TrialSummary` of a finished trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from recipe_opt.recipe import Recipe

__all__ = ["Reporter", "SilentReporter", "TrialSummary"]


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str
    values: dict[str, float]
    recipe: Recipe | None
    seconds: float
    reason: str | None = None
    worker: str | None = None  # set when the trial ran in another process (`search --workers N`)


class Reporter(Protocol):
    """Progress callbacks, called by the study as it works (never the other way round)."""

    def phase(self, message: str) -> None: ...

    def trial_started(self, number: int, recipe: Recipe, proxy_steps: int) -> None: ...

    def step(self, done: int, total: int, loss: float) -> None: ...

    def trial_finished(self, summary: TrialSummary) -> None: ...


class SilentReporter:
    def phase(self, message: str) -> None:
        pass

    def trial_started(self, number: int, recipe: Recipe, proxy_steps: int) -> None:
        pass

    def step(self, done: int, total: int, loss: float) -> None:
        pass

    def trial_finished(self, summary: TrialSummary) -> None:
        pass
