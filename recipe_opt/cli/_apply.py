"""`recipe-opt apply`: the selected recipe at full fidelity, the release decision, a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from recipe_opt.cli._app import app, console, quiet_libraries, torch_threads
from recipe_opt.cli._output import Ticker, release_table, show_reports
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
    from recipe_opt.report import baseline_comparison, price_line
    from recipe_opt.study import StudyRecord, StudyRunner, apply_selected, load_study

    study = load_study(cfg)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("full-fidelity training", total=1, visible=False)
        ticker = Ticker()

        def step(done: int, total: int, loss: float) -> None:
            if ticker.due():
                progress.console.print(f"  full-fidelity training: step {done}/{total}, loss {loss:.3f}")
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
    v = result.version
    console.print(release_table(f"Release checks for {v.ref} against {v.parent}", result.checks))
    comparison = baseline_comparison(v.decision)
    if comparison is not None:
        header, rows = comparison
        table = Table(title="The pick against the baselines (full fidelity)", title_justify="left")
        for h in header:
            table.add_column(escape(h), justify="left" if h == "gate" else "right")
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    pv, fv = result.proxy, result.full.values
    console.print(
        f"proxy vs full: gain {pv['gain']:+.3f} -> {fv['gain']:+.3f}, forgetting {pv['forgetting']:+.3f} -> "
        f"{fv['forgetting']:+.3f}, cost {pv['cost']:.3g} (projected) -> {fv['cost']:.3g} TFLOP (measured)"
    )
    console.print(f"weights: {escape(str(result.weights_path))} ({result.seconds:.0f} s)")
    console.print(f"price: {escape(price_line(StudyRecord.read(study), v.decision))}")
    if result.released:
        console.print(f"[bold green]released[/] {v.ref}: it is now the current version of {v.family}")
    else:
        console.print(f"[bold red]rejected[/] {v.ref}; {v.family}'s current version stays {escape(str(v.parent))}")
        for r in result.reasons:
            console.print(f"  {escape(r)}")
    show_reports(cfg, study)  # the checklist now has the full run, the family report the new version
    if not result.released:
        raise typer.Exit(1)
    following = _next_cycle(config, cfg.family, v.name)
    if following is not None:
        console.print(f"next cycle: recipe-opt search {escape(str(following))} (its base_version is {v.name})")
    else:
        hint = (
            f"next cycle: a study config with base_version: {v.name} and base_model: {result.weights_path} "
            "(warm_start: {studies: [auto]} seeds it from this one)"
        )
        console.print(escape(hint))


def _next_cycle(config: Path, family: str, version: str) -> Path | None:
    """A study config beside `config` that updates `version` of `family`, if there is one."""
    import contextlib

    from recipe_opt._yaml import load_yaml
    from recipe_opt.config import StudyConfig

    for path in sorted(config.parent.glob("*.y*ml")):
        with contextlib.suppress(Exception):  # not a study config, or not one that parses: not it
            raw = load_yaml(path.read_text(encoding="utf-8-sig"))
            if (
                isinstance(raw, dict)
                and raw.get("base_version") == version
                and raw.get("family", StudyConfig.model_fields["family"].default) == family
            ):
                return path
    return None
