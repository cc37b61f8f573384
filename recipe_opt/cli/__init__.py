"""The `recipe-opt` command line (typer)."""

from recipe_opt.cli import _export, _lineage  # noqa: F401  (register export, apply, lineage, fidelity on `app`)
from recipe_opt.cli._app import app, main

__all__ = ["app", "main"]
