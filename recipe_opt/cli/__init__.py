"""The `recipe-opt` command line (typer)."""

from recipe_opt.cli._app import app, main

__all__ = ["app", "main"]
