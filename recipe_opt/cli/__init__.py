"""The `recipe-opt` command line (typer): one module per command, registered on `app` here, in
the order `--help` lists them (the order of an update cycle)."""

# isort: off
from recipe_opt.cli import _demo, _validate, _search, _prepare, _worker, _select, _report  # noqa: F401
from recipe_opt.cli import _apply, _train, _lineage, _fidelity, _export  # noqa: F401
from recipe_opt.cli._app import app, main

# isort: on

__all__ = ["app", "main"]
