"""`recipe-opt report` and `recipe-opt dashboard`: read a study without running trials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import StorageOption, app, console
from recipe_opt.cli._output import show_reports
from recipe_opt.exceptions import RecipeOptError


@app.command("report")
def report_cmd(
    config: Annotated[Path, typer.Argument(help="Study config YAML.")], storage: StorageOption = None
) -> None:
    """(Re)write the HTML report of a study from its storage, without running trials.

    Also rewrites the family's cross-cycle report (`reports/<family>-lineage/`)."""
    from recipe_opt.config import load_study_config
    from recipe_opt.study import load_study

    cfg = load_study_config(config, check_paths=False, storage=storage)
    show_reports(cfg, load_study(cfg))


@app.command()
def dashboard(
    config: Annotated[Path, typer.Argument(help="Study config YAML of a study that has run.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    storage: StorageOption = None,
) -> None:
    """Open optuna-dashboard on the study's storage (it is Optuna's own RDB storage); Ctrl-C stops it."""
    from recipe_opt.config import load_study_config
    from recipe_opt.study import load_study

    cfg = load_study_config(config, check_paths=False, storage=storage)
    load_study(cfg)
    try:
        import optuna_dashboard
    except ImportError:
        raise RecipeOptError("optuna-dashboard is not installed: pip install 'recipe-opt[dashboard]'") from None
    console.print(
        f"optuna-dashboard for study {escape(cfg.name)} on {escape(cfg.storage_display)}: "
        f"http://{host}:{port}/dashboard/ (Ctrl-C stops it)"
    )
    try:
        optuna_dashboard.run_server(cfg.storage_url, host=host, port=port)
    except OSError as exc:  # port in use, no permission
        raise RecipeOptError(f"cannot listen on {host}:{port}: {exc}") from None
    except KeyboardInterrupt:
        pass
