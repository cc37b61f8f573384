"""`recipe-opt fidelity`: does the proxy rank recipes the way full runs do?"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from recipe_opt.cli._app import app, console, err
from recipe_opt.cli._lineage import LineageStorageOption, query


@app.command()
def fidelity(
    family: Annotated[str, typer.Argument(help="Model family.")],
    storage: LineageStorageOption = None,
    low: Annotated[float, typer.Option(help="Warn when a rank correlation falls below this.")] = 0.5,
) -> None:
    """Proxy vs full-run rank correlation (Spearman's rho) per objective, across the family's recipes.

    Every `apply` adds one recipe run at both fidelities.
    """
    from recipe_opt.study import fidelity_report

    started = time.perf_counter()
    rep = query(storage, lambda store: fidelity_report(store, family, low=low))
    table = Table(title=f"Proxy vs full fidelity, family {family} ({len(rep.pairs)} recipes)", title_justify="left")
    for col in ("cycle", "trial", "origin", "recipe", "gain proxy/full", "forgetting proxy/full", "cost proxy/full"):
        table.add_column(col)
    for p in rep.pairs:
        table.add_row(
            escape(p.cycle),
            "-" if p.trial_number is None else str(p.trial_number),
            p.origin,
            p.recipe_hash[:12],
            f"{p.proxy['gain']:+.3f} / {p.full['gain']:+.3f}",
            f"{p.proxy['forgetting']:+.3f} / {p.full['forgetting']:+.3f}",
            f"{p.proxy['cost']:.3g} / {p.full['cost']:.3g}",
        )
    console.print(table)
    console.print(f"Spearman rho (proxy vs full)  [dim]({time.perf_counter() - started:.1f} s)[/]")
    for key in rep.rho:
        console.print(f"  {key}: {rep.describe(key)}")
    for w in rep.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
