"""`recipe-opt prepare`: create a study for workers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import STORAGE_ENV, StorageOption, app, console, quiet_libraries, torch_threads
from recipe_opt.cli._options import NTrialsOption, WarmStartOption, WarmStartPriorsOption
from recipe_opt.cli._output import RichReporter, progress


@app.command()
def prepare(
    config: Annotated[Path, typer.Argument(help="Study config YAML.")],
    storage: StorageOption = None,
    n_trials: NTrialsOption = None,
    warm_start: WarmStartOption = None,
    warm_start_priors: WarmStartPriorsOption = None,
) -> None:
    """Create the study for workers: tables, queued recipes, base-model scores, trial budget.

    Run once, before any `recipe-opt worker` (workers never create tables: concurrent first-time
    creation is a known Optuna failure). Running it again on a prepared study only updates the
    budget (`--n-trials`). Exit status 2 on bad input, with nothing written.
    """
    from recipe_opt.study import WarmStartRequest, load_inputs

    cfg, space = load_inputs(config, storage=storage)
    request = WarmStartRequest.of(cfg, warm_start, warm_start_priors)
    quiet_libraries()
    torch_threads()
    import optuna

    from recipe_opt.study import ATTR_BUDGET, StudyRunner, count_trials

    with progress() as bars:
        runner = StudyRunner(cfg, space, RichReporter(bars, None, trials=False))
        study = runner.prepare(n_trials=n_trials, warm_start=request)
    finished, running = count_trials(study)
    queued = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    budget = study.user_attrs.get(ATTR_BUDGET)
    console.print(
        f"study [bold]{cfg.name}[/] is ready in {escape(cfg.storage_display)}: budget "
        f"{budget if budget is not None else 'unbounded'} finished trials, {finished} finished, {running} running, "
        f"{queued} queued; base model scored"
    )
    console.print(
        f"next: start workers, each with `recipe-opt worker {escape(str(config))}` and the storage in "
        f"${STORAGE_ENV} (or --storage); then `recipe-opt select {escape(str(config))}`"
    )
