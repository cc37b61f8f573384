"""The `recipe-opt` command line (typer)."""

from recipe_opt.cli import _lineage  # noqa: F401  (registers apply, lineage, fidelity on `app`)
from recipe_opt.cli._app import app, main

__all__ = ["app", "main"]
