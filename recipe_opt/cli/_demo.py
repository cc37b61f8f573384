"""`recipe-opt demo init`: the offline demo world."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import console, demo_app, quiet_libraries, torch_threads
from recipe_opt.cli._output import Ticker
from recipe_opt.exceptions import ConfigError


def _same_world(directory: Path, seed: int) -> bool:
    """True if `directory` holds a complete demo world built with `seed` and today's defaults."""
    import json
    from dataclasses import asdict

    from recipe_opt.demo import WORLD_FORMAT, DemoWorldConfig

    try:
        manifest = json.loads((directory / "world.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(
        manifest.get("config") == asdict(DemoWorldConfig(seed=seed))
        and manifest.get("format") == WORLD_FORMAT
        and (directory / "models" / "v0").is_dir()
    )


# ---- demo -------------------------------------------------------------------------------------
@demo_app.command("init")
def demo_init(
    directory: Annotated[Path, typer.Argument(help="Where to build the world (must be empty or absent).")] = Path(
        "demo_world"
    ),
    seed: Annotated[int, typer.Option(help="Seed for data, tokenizer and pre-training.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing world.")] = False,
) -> None:
    """Build the offline demo world: tokenizer, tiny Llama v0 pre-trained on old tasks, data, eval sets."""
    import shutil

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if directory.exists() and any(directory.iterdir()):
        if not force and _same_world(directory, seed):
            console.print(f"demo world in {escape(str(directory))} is already built (seed {seed}); --force rebuilds it")
            return
        if not force:
            raise ConfigError.single(str(directory), "", "exists and is not empty (use --force to rebuild)")
        if not (directory / "world.json").is_file():
            raise ConfigError.single(str(directory), "", "--force only replaces a demo world (no world.json there)")
        shutil.rmtree(directory)
    quiet_libraries()
    torch_threads()
    from recipe_opt.demo import DemoWorldConfig, build_world

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("building demo world", total=DemoWorldConfig().pretrain_steps)
        ticker = Ticker()

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total)
            if ticker.due():
                console.print(f"  {escape(message)}: {done}/{total}")

        summary = build_world(directory, DemoWorldConfig(seed=seed), progress=progress)
    from recipe_opt.study import weights_fingerprint

    acc = ", ".join(f"{k} {v:.2f}" for k, v in summary.base_accuracy.items())
    console.print(
        f"demo world in [bold]{escape(str(summary.root))}[/]: v0 = Llama with {summary.n_parameters:,} parameters, "
        f"pre-trained in {summary.pretrain_seconds:.0f} s"
    )
    console.print(f"base exact match: {acc}")
    # Bit-identical on one machine; another CPU's float kernels pre-train another v0, and every
    # figure downstream (the README's included) moves with it. The lineage shows the same digest.
    console.print(f"v0 weights sha256 {weights_fingerprint(summary.model_dir)[:12]}")
    console.print("next: recipe-opt search studies/demo.yaml")
