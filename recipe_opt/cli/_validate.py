"""`recipe-opt validate`: every problem of every file at once (the checks: `recipe_opt.study._validate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import app, console, error, quiet_libraries, torch_threads


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Study configs and/or search-space files.")],
) -> None:
    """Check study configs and search spaces; report every problem at once (exit 2 if any)."""
    from recipe_opt.study._validate import validate_file

    quiet_libraries()
    torch_threads()  # a study config's check measures a few proxy steps
    problems: list[str] = []
    for path in files:
        check = validate_file(path)
        if check.problems:
            problems += check.problems
            continue
        console.print(f"[green]ok[/] {escape(str(path))}: {check.kind}")
        for line in check.details:
            console.print(f"    {escape(line)}")
        for name, domain in check.domains:
            console.print(f"    {name:<18} {escape(domain)}")
    for line in problems:
        error(line)
    if problems:
        raise typer.Exit(2)
