"""`recipe-opt apply`: the selected recipe at full fidelity, the release decision, a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from recipe_opt.cli._app import app, console, quiet_libraries, torch_threads
from recipe_opt.cli._output import show_reports
from recipe_opt.exceptions import ConfigError


@app.command()
def apply(
    config: Annotated[Path, typer.Argument(help="Study config YAML of a study with a selected recipe.")],
    version: Annotated[
        str | None, typer.Option(help="Name of the new version (default: apply.version, or the base's number + 1).")
    ] = None,
) -> None:
    """Train the selected recipe at full fidelity, judge it by the release gates, register it.

    The new version's parent is the study's base version. It becomes the family's current
    version if every gate passes (exit 0); otherwise it is registered as rejected with its
    reasons, the parent stays current, and the exit status is 1.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from recipe_opt.study import load_inputs

    cfg, space = load_inputs(config)
    if version is not None:
        from recipe_opt.config import ApplyConfig

        try:
            ApplyConfig(version=version)
        except ValueError:
            raise ConfigError.single(
                "--version", "", "must be 1-100 characters of letters, digits, '.', '_' or '-'"
            ) from None
    quiet_libraries()
    torch_threads()
    from recipe_opt.study import StudyRunner, apply_selected, load_study

    study = load_study(cfg)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("full-fidelity training", total=1, visible=False)

        def step(done: int, total: int, loss: float) -> None:
            if done == total or done % 10 == 0:
                progress.update(
                    bar,
                    completed=done,
                    total=total,
                    visible=True,
                    description=f"full-fidelity training (loss {loss:.3f})",
                )

        def phase(message: str) -> None:
            progress.console.print(f"[dim]·[/] {escape(message)}")

        runner = StudyRunner(cfg, space)
        result = apply_selected(cfg, runner, study, version=version, progress=step, phase=phase)
    show_reports(cfg, study)  # the checklist now has the full run, the family report the new version
    v = result.version
    table = Table(title=f"Release checks for {v.ref} against {v.parent}", title_justify="left")
    for col in ("gate", "measured", "bound", "result"):
        table.add_column(col, justify="left" if col in ("gate", "result") else "right")
    for c in result.checks:
        table.add_row(
            c.gate,
            f"{c.measured:+.3f}" if c.gate != "max_cost" else f"{c.measured:.3g} TFLOP",
            "-" if c.bound is None else f"{c.bound:g}",
            "[green]pass[/]" if c.passed else "[red]FAIL[/]",
        )
    console.print(table)
    pv, fv = result.proxy, result.full.values
    console.print(
        f"proxy vs full: gain {pv['gain']:+.3f} -> {fv['gain']:+.3f}, forgetting {pv['forgetting']:+.3f} -> "
        f"{fv['forgetting']:+.3f}, cost {pv['cost']:.3g} (projected) -> {fv['cost']:.3g} TFLOP (measured)"
    )
    console.print(f"weights: {escape(str(result.weights_path))} ({result.seconds:.0f} s)")
    if result.released:
        console.print(f"[bold green]released[/] {v.ref}: it is now the current version of {v.family}")
        hint = (
            f"next cycle: a study config with base_version: {v.name} and base_model: {result.weights_path} "
            "(warm_start: {studies: [auto]} seeds it from this one)"
        )
        console.print(escape(hint))
    else:
        console.print(f"[bold red]rejected[/] {v.ref}; {v.family}'s current version stays {escape(str(v.parent))}")
        for r in result.reasons:
            console.print(f"  {escape(r)}")
        raise typer.Exit(1)
