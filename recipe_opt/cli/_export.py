"""`recipe-opt export`: the selected recipe as the config of the full update run, in the tool the
user trains with. Registered on the main app by `recipe_opt.cli`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import app, console, err
from recipe_opt.exceptions import ConfigError
from recipe_opt.export import format_names_text

if TYPE_CHECKING:
    from recipe_opt.config import StudyConfig
    from recipe_opt.recipe import Recipe


def _read_recipe(path: Path) -> tuple[Recipe, StudyConfig | None]:
    """RECIPE is a recipe file, or a study config whose selected recipe (reports/<study>/recipe.yaml)
    to export; in the second case the study comes with it."""
    from recipe_opt._yaml import load_yaml_mapping
    from recipe_opt.config import load_study_config
    from recipe_opt.recipe import Recipe

    raw = load_yaml_mapping(path)  # JSON is YAML too
    if "mixture" in raw:
        try:
            return Recipe.from_dict(raw), None
        except ValueError as exc:
            raise ConfigError.single(str(path), "", str(exc)) from None
    if "sources" not in raw and "base_model" not in raw:
        raise ConfigError.single(
            str(path), "", "neither a recipe (no `mixture`) nor a study config (no `sources`, no `base_model`)"
        )
    cfg = load_study_config(path, check_paths=False)
    recipe_path = cfg.output_path / "recipe.yaml"
    if not recipe_path.is_file():
        raise ConfigError.single(
            str(path), "", f"no selected recipe at {recipe_path} (run `recipe-opt search {path}` first?)"
        )
    try:
        return Recipe.load(recipe_path), cfg
    except ValueError as exc:
        raise ConfigError.single(str(recipe_path), "", str(exc)) from None


def _write(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a file, a failure leaves none."""
    from recipe_opt._files import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ConfigError.single("--out", "", f"cannot write {path}: {exc.strerror or exc}") from None


@app.command()
def export(
    recipe: Annotated[
        Path,
        typer.Argument(
            help="A recipe file (recipe.yaml / .json), or a study config YAML: then its selected recipe, "
            "reports/<study>/recipe.yaml, with the study's paths."
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help=f"{format_names_text()}.", show_default=False),
    ],
    study: Annotated[
        Path | None,
        typer.Option(help="Study config YAML whose base model and data file paths to fill in."),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Write here; a directory (existing, or given with a trailing /) gets the suggested file name. "
            "Default: stdout.",
        ),
    ] = None,
) -> None:
    """Write the recipe as the config of the full update run for HF Trainer, LLaMA-Factory or axolotl.

    Fields the target cannot express (axolotl has no per-dataset weights, Trainer no data mixture)
    are reported as warnings on stderr, each saying what to do by hand. The file carries the
    recipe's content hash and the recipe-opt version.
    """
    from recipe_opt.config import load_study_config
    from recipe_opt.export import check_format, export_recipe

    fmt = check_format(fmt)
    loaded, implied = _read_recipe(recipe)
    cfg = implied
    if study is not None:
        if implied is not None and Path(study).resolve() != recipe.resolve():
            raise ConfigError.single(
                "--study", "", f"{recipe} is a study config already; pass its recipe.yaml to use {study}'s paths"
            )
        cfg = load_study_config(study, check_paths=False)
    result = export_recipe(loaded, fmt, study=cfg)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if out is None:
        sys.stdout.write(result.text)
        return
    target = Path(out)
    path = target / result.suggested_name if out.endswith(("/", "\\")) or target.is_dir() else target
    _write(path, result.text)
    console.print(f"wrote {escape(str(path))} ({result.format}, recipe {loaded.short_hash})")
