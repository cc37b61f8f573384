"""`recipe-opt search`: run (or resume) a study, select its recipe, write the reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from recipe_opt.cli._app import StorageOption, app, console, err, error, quiet_libraries, stop_on_sigterm, torch_threads
from recipe_opt.cli._options import (
    BudgetOption,
    EarlyStoppingOption,
    MaxCostOption,
    NTrialsOption,
    SamplerOption,
    TimeoutOption,
    WarmStartOption,
    WarmStartPriorsOption,
)
from recipe_opt.cli._output import RichReporter, print_selection, progress, show_reports
from recipe_opt.exceptions import ConfigError, RecipeOptError

if TYPE_CHECKING:
    import optuna

    from recipe_opt.config import StudyConfig
    from recipe_opt.study import StudyRunner


@app.command()
def search(
    config: Annotated[Path, typer.Argument(help="Study config YAML (e.g. studies/demo.yaml).")],
    n_trials: NTrialsOption = None,
    timeout: TimeoutOption = None,
    max_cost: MaxCostOption = None,
    budget: BudgetOption = None,
    sampler: SamplerOption = None,
    early_stopping: EarlyStoppingOption = None,
    warm_start: WarmStartOption = None,
    warm_start_priors: WarmStartPriorsOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Run trials in N worker processes on this machine, one per GPU where there are GPUs "
            "(CUDA_VISIBLE_DEVICES pinned per worker). Needs a server database (--storage postgresql://...).",
        ),
    ] = None,
    storage: StorageOption = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report when the search ends.")] = True,
) -> None:
    """Run (or resume) the study: proxy fine-tunes scored by gain, forgetting and cost.

    Exit status: 0 when a recipe was selected and no trial failed; 3 when a recipe was selected
    but some trials failed (the summary says why); 1 when nothing could be selected; 2 on bad input;
    130 when interrupted (finished trials are kept: the same command resumes).
    """
    from recipe_opt.study import WarmStartRequest, load_inputs

    cfg, space = load_inputs(config, sampler=sampler, early_stopping=early_stopping, storage=storage, budget=budget)
    request = WarmStartRequest.of(cfg, warm_start, warm_start_priors)
    devices: list[str] = []
    if workers is not None and cfg.trials.budget is not None:
        raise ConfigError.single(
            "--workers",
            "",
            f"a budgeted search (budget {cfg.trials.budget}) plans its rungs in one process; run it without "
            "--workers, or drop the budget and set trials.n_trials",
        )
    if workers is not None:
        from recipe_opt.cli._workers import visible_devices

        if not cfg.database.is_server:
            raise ConfigError.single(
                "--workers",
                "",
                f"worker processes share the study through a database server, but the storage is "
                f"{cfg.storage_display} (SQLite serialises writers: 'database is locked', optuna#820); "
                "use --storage postgresql://...",
            )
        devices = visible_devices()
        if devices and workers > len(devices):
            raise ConfigError.single(
                "--workers",
                "",
                f"one trial per GPU: `workers <= GPUs` must hold, but got (workers={workers}, "
                f"GPUs={len(devices)}: {','.join(devices)})",
            )
    quiet_libraries()
    torch_threads()
    from recipe_opt.study import StudyRunner

    stop_on_sigterm()
    started = time.perf_counter()
    target = n_trials or cfg.trials.n_trials
    if cfg.trials.budget is not None:
        target = None  # the plan says how many, once the projection has measured a step
    where = ""
    if workers is not None:
        where = f", {workers} workers on " + (f"GPUs {','.join(devices[:workers])}" if devices else "CPU")
    trials = f"budget {cfg.trials.budget}" if cfg.trials.budget is not None else f"{target or 'unbounded'} trials"
    console.print(
        f"study [bold]{cfg.name}[/]: {trials}, sampler {cfg.sampler.name}, "
        f"early stopping {'on' if cfg.early_stopping.enabled else 'off'}, objectives {', '.join(cfg.objectives)}, "
        f"storage {escape(cfg.storage_display)}{where}"
    )
    with progress() as bars:
        reporter = RichReporter(bars, target)
        runner = StudyRunner(cfg, space, reporter)
        try:
            if workers is None:
                study = runner.run(n_trials=n_trials, timeout=timeout, max_cost=max_cost, warm_start=request)
            else:
                from recipe_opt.cli._workers import run_local_workers

                study = runner.prepare(n_trials=n_trials, warm_start=request)
                runner.release()  # the workers load their own copies; the GPUs are theirs now
                passthrough = _passthrough(sampler, early_stopping, timeout, max_cost)
                code = run_local_workers(cfg, config, study, workers, devices, passthrough, reporter)
                if code is not None:
                    raise typer.Exit(code)
        except KeyboardInterrupt:
            bars.stop()
            err.print(
                "interrupted: finished trials are stored, a running trial was failed and queued again; "
                "run the same command again to resume"
            )
            raise typer.Exit(130) from None
    _finish(cfg, config, study, runner, started, report)


def _passthrough(
    sampler: str | None, early_stopping: bool | None, timeout: float | None, max_cost: float | None
) -> list[str]:
    """The search options a worker process must share with its coordinator."""
    args: list[str] = []
    if sampler is not None:
        args += ["--sampler", sampler]
    if early_stopping is not None:
        args.append("--early-stopping" if early_stopping else "--no-early-stopping")
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    if max_cost is not None:
        args += ["--max-cost", str(max_cost)]
    return args


def _finish(
    cfg: StudyConfig, config: Path, study: optuna.Study, runner: StudyRunner, started: float, report: bool
) -> None:
    """Select and record the recipe, write the reports, print the summary; exit 0, 1 or 3."""
    from recipe_opt.study import StudyRecord, select_and_record

    record = StudyRecord.read(study)
    failed_now = sum(t.state == "FAIL" for t in record.trials if t.number >= runner.first_new_trial)
    failed = record.count("FAIL")
    # Failures of earlier runs of a resumed study are said apart: they do not change the exit status.
    earlier = ""
    if failed_now < failed:
        earlier = " (all in earlier runs)" if not failed_now else f" ({failed - failed_now} of them in earlier runs)"
    summary = (
        f"{record.count('COMPLETE')} complete, {record.count('PRUNED')} pruned, {failed} failed{earlier}; "
        f"proxy compute {record.proxy_compute():.3g} TFLOP; {time.perf_counter() - started:.0f} s"
    )
    code = 3 if failed_now else 0
    try:
        selected, path = select_and_record(cfg, study, space=runner.space, rerunner=runner)
        print_selection(cfg, study, selected, path)
    except RecipeOptError as exc:
        error(str(exc))
        code = 1
    if report:  # also when nothing passes: the report shows the closest trials and what each missed
        show_reports(cfg, study, indent="  ")
    console.print(summary)
    for line in record.ending_reasons():
        console.print(f"  {escape(line)}")
    if code != 1:
        console.print(
            f"next: read the report, then `recipe-opt apply {escape(str(config))}` trains the recipe at full "
            f"fidelity and registers {cfg.family}/{cfg.apply_version} if it passes the release gates"
        )
    if code:
        raise typer.Exit(code)
