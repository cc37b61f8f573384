"""`recipe-opt train`: any recipe at full fidelity, scored and judged like an `apply` that
registers nothing (the path: `recipe_opt.study.FullFidelity`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import app, console, quiet_libraries, torch_threads
from recipe_opt.cli._output import Ticker, release_table
from recipe_opt.exceptions import ConfigError


@app.command()
def train(
    recipe_file: Annotated[Path, typer.Argument(help="A recipe YAML (as `search` writes it, or your own).")],
    study: Annotated[Path, typer.Option("--study", help="The study config whose base, data and gates to use.")],
    seed: Annotated[int | None, typer.Option(help="Training seed (default: the recipe's).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the run's record (default: <output_dir>/train/<hash>-s<seed>.json)."),
    ] = None,
) -> None:
    """Train a recipe of your choosing at full fidelity, score it on every item, check the gates.

    Trained exactly as `apply` trains the pick (every step of its budget at its batch size,
    every example), against the study's base version, with the study's gates. Nothing is
    registered: no version, no release decision. Writes the run's record as JSON.
    """
    import json

    import yaml

    from recipe_opt._files import unwritable, write_atomic
    from recipe_opt.recipe import Recipe
    from recipe_opt.study import FullFidelity, StudyRunner, load_inputs

    cfg, space = load_inputs(study)
    try:
        recipe = Recipe.load(recipe_file)
    except FileNotFoundError:
        raise ConfigError.single(str(recipe_file), "", "file not found") from None
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        why = str(exc).removeprefix(f"{recipe_file}: ").splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError.single(str(recipe_file), "", f"not a recipe: {why}") from None
    if seed is not None:
        recipe = replace(recipe, seed=seed)
    target = out or cfg.output_path / "train" / f"{recipe.short_hash}-s{recipe.seed}.json"
    problem = unwritable(target.parent)  # found now, not after the training
    if problem is not None:
        raise ConfigError.single("--out" if out else str(cfg.config_path), "" if out else "output_dir", problem)
    quiet_libraries()
    torch_threads()
    runner = StudyRunner(cfg, space)
    ticker = Ticker()

    def step(done: int, total: int, loss: float) -> None:
        if ticker.due() or done == total:
            console.print(f"  full-fidelity training: step {done}/{total}, loss {loss:.3f}")

    console.print(f"[dim]·[/] scoring the base {escape(cfg.base_version)} on every suite, every item")
    fidelity = FullFidelity(runner)
    fidelity.parent  # noqa: B018  (scored now, so its time is not the recipe's)
    console.print(
        f"[dim]·[/] training {recipe.short_hash} at full fidelity: {recipe.budget.steps} steps of batch "
        f"{recipe.budget.batch_size} ({escape(recipe.summary())})"
    )
    done = fidelity.train(recipe, label=recipe_file.stem, progress=step)
    console.print(release_table(f"Release gates for {recipe.short_hash} against {cfg.base_version}", done.checks))
    v = done.full.values
    console.print(
        f"gain {v['gain']:+.3f}, forgetting {v['forgetting']:+.3f}, cost {v['cost']:.3g} TFLOP (measured), "
        f"{done.seconds:.0f} s"
    )
    for task, (before, after) in done.full.new_task_scores.items():
        console.print(f"  {escape(task)}: {before:.3f} -> {after:.3f}")
    write_atomic(target, json.dumps({"study": cfg.name, **done.to_dict()}, indent=2) + "\n")
    verdict = "[green]passes every gate[/]" if done.passes else "[red]fails a gate[/]"
    console.print(f"{verdict}; record: {escape(str(target))}")
