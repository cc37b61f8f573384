"""`recipe-opt worker`: join a prepared study and run its trials.

A database that stays unreachable is a `StorageError` (exit status 1, not bad input): a restart
rejoins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import StorageOption, app, console, err, quiet_libraries, stop_on_sigterm, torch_threads
from recipe_opt.cli._options import EarlyStoppingOption, MaxCostOption, SamplerOption, TimeoutOption
from recipe_opt.cli._output import RichReporter, progress


@app.command()
def worker(
    config: Annotated[Path, typer.Argument(help="Study config YAML (the same file `prepare` used).")],
    storage: StorageOption = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            "--worker-id",
            envvar="RECIPE_OPT_WORKER_ID",
            help="A label recorded with each trial this worker runs (default: HOST-PID); also seeds its "
            "sampler, so give each worker its own.",
        ),
    ] = None,
    sampler: SamplerOption = None,
    early_stopping: EarlyStoppingOption = None,
    timeout: TimeoutOption = None,
    max_cost: MaxCostOption = None,
) -> None:
    """Join a prepared study and run its trials until the study's budget is spent.

    Any number of workers, on any machines, may share one study on a server database. A worker
    killed outright leaves its trial to be failed and retried by another once its heartbeat is
    older than `workers.grace_period`; SIGINT/SIGTERM fail the running trial, queue it again and
    stop. Exit status: 0 when the budget is spent (or --timeout/--max-cost stop it); 1 after
    `workers.max_consecutive_failures` failed trials in a row; 2 on bad input or an unprepared
    study; 130 when stopped by a signal.
    """
    from recipe_opt.study import load_inputs

    cfg, space = load_inputs(config, sampler=sampler, early_stopping=early_stopping, storage=storage, migrate=False)
    quiet_libraries()
    torch_threads()
    from recipe_opt.study import ATTR_BUDGET, StudyRunner, WorkerInfo, count_trials

    stop_on_sigterm()
    info = WorkerInfo(worker_id or WorkerInfo.default_id())
    with progress() as bars:
        reporter = RichReporter(bars, None)
        runner = StudyRunner(cfg, space, reporter)
        try:
            study = runner.attach(info)
            budget = study.user_attrs.get(ATTR_BUDGET)
            bars.update(reporter.trials_task, description="trials run here")
            bars.console.print(
                f"worker [bold]{escape(info.id)}[/] joins study [bold]{cfg.name}[/] on "
                f"{escape(cfg.storage_display)} (budget {budget}, GPUs: {info.devices})"
            )
            outcome = runner.work(study, timeout=timeout, max_cost=max_cost, worker=info)
        except KeyboardInterrupt:
            bars.stop()
            err.print(f"worker {escape(info.id)} stopped: its running trial, if any, was failed and queued again")
            raise typer.Exit(130) from None
    finished, running = count_trials(study)
    console.print(
        f"worker {escape(info.id)}: {outcome.complete} complete, {outcome.pruned} pruned, {outcome.failed} failed"
        + (f", {outcome.lost} dropped (failed as lost meanwhile)" if outcome.lost else "")
        + f"; study at {finished}/{budget} finished, {running} running; stopped: {outcome.stopped}"
    )
    if outcome.stopped == "failures":
        raise typer.Exit(1)
