"""What the study commands print: progress (a `Reporter` rendered with rich), the feasible front,
the selection, and where the reports went."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from recipe_opt.cli._app import console

if TYPE_CHECKING:
    import optuna

    from recipe_opt.config import StudyConfig
    from recipe_opt.recipe import Recipe
    from recipe_opt.study import GateCheck, SelectedRecipe, StudyRecord, TrialSummary

__all__ = [
    "RichReporter",
    "Ticker",
    "pareto_table",
    "print_selection",
    "progress",
    "release_table",
    "show_reports",
]


class Ticker:
    """Plain progress lines where rich draws no bar: output that is not a terminal (CI logs,
    `nohup`, a Kubernetes Job's log), where rich renders a bar only when it ends. `due()` is true
    at most every `RECIPE_OPT_PROGRESS_SECONDS` (default 5) seconds, and never on a terminal."""

    def __init__(self) -> None:
        import os
        import time

        self.plain = not console.is_terminal
        self.every = float(os.environ.get("RECIPE_OPT_PROGRESS_SECONDS", "5"))
        self._clock = time.monotonic
        self._last = self._clock()

    def due(self) -> bool:
        if not self.plain or self._clock() - self._last < self.every:
            return False
        self._last = self._clock()
        return True


def progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


class RichReporter:
    """Study progress (`recipe_opt.study.Reporter`): a bar over trials and one over the running
    trial's steps, and one line per phase and per finished trial."""

    def __init__(self, bars: Any, n_trials: int | None, *, trials: bool = True) -> None:
        self.progress = bars
        self.trials_task = bars.add_task("trials", total=n_trials, visible=trials)
        self.steps_task = bars.add_task("proxy training", total=1, visible=False)
        self.ticker = Ticker()
        self.trial = -1

    def phase(self, message: str) -> None:
        self.progress.console.print(f"[dim]·[/] {escape(message)}")

    def trial_started(self, number: int, recipe: Recipe, proxy_steps: int) -> None:
        self.trial = number
        self.progress.update(
            self.steps_task,
            description=f"trial {number}: proxy training",
            completed=0,
            total=proxy_steps,
            visible=True,
        )

    def step(self, done: int, total: int, loss: float) -> None:
        if done == total or done % 5 == 0:
            self.progress.update(self.steps_task, completed=done, description=f"proxy training (loss {loss:.3f})")
        if self.ticker.due():
            self.progress.console.print(f"  trial {self.trial}: step {done}/{total}, loss {loss:.3f}")

    def trial_finished(self, summary: TrialSummary) -> None:
        self.progress.update(self.steps_task, visible=False)
        self.progress.advance(self.trials_task)
        if summary.state == "COMPLETE":
            v = summary.values
            vals = f"gain {v['gain']:+.3f}  forgetting {v['forgetting']:+.3f}  cost {v['cost']:.3g} TFLOP"
            colour = "green"
        else:
            vals = escape(summary.reason or "")
            colour = "yellow" if summary.state == "PRUNED" else "red"
        recipe = escape(summary.recipe.summary()) if summary.recipe else ""
        where = f"{escape(summary.worker)}, " if summary.worker else ""
        self.progress.console.print(
            f"[{colour}]trial {summary.number:>3} {summary.state:<8}[/] {vals}  "
            f"[dim]({where}{summary.seconds:.1f} s) {recipe}[/]",
            soft_wrap=True,
        )


def pareto_table(record: StudyRecord, selected: SelectedRecipe | None) -> Table:
    """The feasible front (every gate passes, as `check_gates` judges it), best gain first."""
    front = sorted(record.front, key=lambda t: -t.values["gain"])
    table = Table(
        title=f"Feasible Pareto front of {record.name} ({len(front)} trials, all gates pass)", title_justify="left"
    )
    cols = (
        "trial",
        "gain ↑",
        "forgetting ↓",
        "cost TFLOP ↓",
        "mixture",
        "replay",
        "peak LR",
        "schedule",
        "rank",
        "steps",
    )
    for col in cols:
        table.add_column(col, justify="right" if col not in ("mixture", "schedule") else "left")
    for t in front:
        v, r = t.values, t.recipe
        assert r is not None
        mark = " ★" if selected and selected.trial_number == t.number else ""
        table.add_row(
            f"{t.number}{mark}",
            f"{v['gain']:+.3f}",
            f"{v['forgetting']:+.3f}",
            f"{v['cost']:.3g}",
            " ".join(f"{k}={w:.2f}" for k, w in r.mixture.weights),
            f"{r.replay.ratio:.2f}",
            f"{r.schedule.peak_lr:.1e}",
            r.schedule.shape,
            str(r.adapter.rank),
            str(r.budget.steps),
        )
    return table


def print_selection(cfg: StudyConfig, study: optuna.Study, selected: SelectedRecipe, recipe_path: Path) -> None:
    from recipe_opt.study import StudyRecord, search_price

    console.print(pareto_table(StudyRecord.read(study, gates=cfg.gates), selected))
    console.print(
        f"[bold]selected trial {selected.trial_number}[/] ({selected.policy}): {escape(selected.recipe.summary())}"
    )
    console.print(f"  rule: {escape(selected.rule)}")
    console.print(f"  why:  {escape(selected.reason)}")
    console.print(
        f"  recipe written to {escape(str(recipe_path))} and to the lineage store "
        f"({cfg.family}/{cfg.base_version} -> {cfg.name})"
    )
    console.print(f"  price: {escape(search_price(StudyRecord.read(study)).line())}")


def show_reports(cfg: StudyConfig, study: optuna.Study, *, indent: str = "") -> None:
    """Write the study's report (with summary.md) and its family's, and say where they are."""
    from recipe_opt.report import write_reports

    path, family = write_reports(study, cfg.output_path, cfg.storage_url, cfg.family)
    console.print(f"{indent}report: {escape(str(path))} (and summary.md beside it)")
    if family is not None:
        console.print(f"{indent}family report: {escape(str(family))} (every cycle of {escape(cfg.family)})")


def release_table(title: str, checks: Sequence[GateCheck]) -> Table:
    """The release gates' checks of a full run: gate, measured, bound, pass or FAIL."""
    table = Table(title=title, title_justify="left")
    for col in ("gate", "measured", "bound", "result"):
        table.add_column(col, justify="left" if col in ("gate", "result") else "right")
    for c in checks:
        bound = ("> 0" if c.gate == "min_gain" else "-") if c.bound is None else f"{c.bound:g}"
        table.add_row(
            escape(c.gate),
            f"{c.measured:+.3f}" if c.gate != "max_cost" else f"{c.measured:.3g} TFLOP",
            bound,
            "[green]pass[/]" if c.passed else "[red]FAIL[/]",
        )
    return table
