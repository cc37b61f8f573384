"""`recipe-opt` command line.

Heavy libraries (torch, transformers, peft, lm-eval) are imported inside the commands that need
them, so `recipe-opt --help` and `recipe-opt validate` start in well under a second.

Exit status: 0 success, 1 the search ran but every trial failed, 2 bad input (config, data,
model, storage) — reported as one line per problem, naming the file and the field.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from recipe_opt.exceptions import ConfigError, ConfigProblem, RecipeOptError, StorageError

if TYPE_CHECKING:
    import optuna

    from recipe_opt.config import StudyConfig
    from recipe_opt.recipe import Recipe
    from recipe_opt.space import SearchSpace
    from recipe_opt.study import SelectedRecipe


class _OneLineUsageErrors(TyperGroup):
    """Usage errors (an option out of range, an unknown option, a missing argument) as one line,
    `error: --n-trials: ...`, and exit status 2, like every other bad input; click's default is a
    usage line, a hint and a boxed message."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from typer._click.exceptions import UsageError
        from typer.exceptions import Abort

        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `recipe-opt`: the help, as before
                exc.show()
                sys.exit(exc.exit_code)
            message = exc.format_message()
            param = getattr(exc, "param", None)
            opts = [o for o in getattr(param, "opts", None) or [] if o.startswith("-")]
            if opts:  # name the option, and show the value given (click's message has neither)
                message = f"{opts[0]}: " + message.split(": ", 1)[-1].rstrip(".")
                given = kwargs.get("args", args[0] if args else None)
                argv = list(given) if given is not None else sys.argv[1:]
                for i, token in enumerate(argv):
                    if token in opts and i + 1 < len(argv):
                        message += f", but got {argv[i + 1]!r}"
                    elif token.split("=", 1)[0] in opts and "=" in token:
                        message += f", but got {token.split('=', 1)[1]!r}"
            err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            sys.exit(2)
        except Abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="recipe-opt",
    help="Search the training recipe for the next update of a deployed LLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
demo_app = typer.Typer(help="The embedded offline demo world.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")

# Piped output (CI logs, `| tee`) gets 140 columns instead of rich's 80 so the Pareto table fits.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)


def _fail(exc: RecipeOptError) -> typer.Exit:
    lines = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [str(exc)]
    for line in lines:
        err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    return typer.Exit(code=2)


def _quiet_libraries() -> None:
    """Keep the terminal for recipe-opt's own progress: library INFO logs and bars off."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "peft", "accelerate", "datasets", "lm_eval", "lm-eval", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - datasets comes with lm-eval
        pass
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", message=".*GPSampler.*greenlet.*")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


STORAGE_ENV = "RECIPE_OPT_STORAGE"
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar=STORAGE_ENV,
        show_envvar=True,
        show_default=False,
        help="Database URL of the study and the lineage store (overrides the config's `storage:`). "
        f"Read from ${STORAGE_ENV} when not given: that keeps a password out of the process list.",
    ),
]


def _load(
    config: Path,
    *,
    sampler: str | None = None,
    early_stopping: bool | None = None,
    storage: str | None = None,
    migrate: bool = True,
) -> tuple[StudyConfig, SearchSpace]:
    from recipe_opt.config import load_study_config
    from recipe_opt.space import load_search_space

    cfg = load_study_config(config, storage=storage)
    if sampler is not None:
        from recipe_opt.config import SamplerConfig
        from recipe_opt.exceptions import ConfigError

        try:
            new_sampler = SamplerConfig(name=sampler, n_startup_trials=cfg.sampler.n_startup_trials)  # type: ignore[arg-type]
        except ValueError:
            raise ConfigError.single(
                "--sampler", "", f"must be one of tpe, gp, nsga2, random, qmc, but got {sampler!r}"
            ) from None
        cfg = cfg.model_copy(update={"sampler": new_sampler})
    if early_stopping is not None:
        cfg = cfg.model_copy(
            update={"early_stopping": cfg.early_stopping.model_copy(update={"enabled": early_stopping})}
        )
    space = load_search_space(cfg.search_space_path, list(cfg.sources.new))
    if cfg.base_model_kind != "dir":  # a lineage reference or hub id: a local directory from here on
        from recipe_opt.study import resolve_base_model

        cfg = resolve_base_model(cfg, migrate=migrate)
    return cfg, space


def _same_world(directory: Path, seed: int) -> bool:
    """True if `directory` holds a complete demo world built with `seed` and today's defaults."""
    import json
    from dataclasses import asdict

    from recipe_opt.demo import WORLD_FORMAT, DemoWorldConfig

    try:
        manifest = json.loads((directory / "world.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(
        manifest.get("config") == asdict(DemoWorldConfig(seed=seed))
        and manifest.get("format") == WORLD_FORMAT
        and (directory / "models" / "v0").is_dir()
    )


# ---- demo -------------------------------------------------------------------------------------
@demo_app.command("init")
def demo_init(
    directory: Annotated[Path, typer.Argument(help="Where to build the world (must be empty or absent).")] = Path(
        "demo_world"
    ),
    seed: Annotated[int, typer.Option(help="Seed for data, tokenizer and pre-training.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing world.")] = False,
) -> None:
    """Build the offline demo world: tokenizer, tiny Llama v0 pre-trained on old tasks, data, eval sets."""
    import shutil

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if directory.exists() and any(directory.iterdir()):
        if not force and _same_world(directory, seed):
            console.print(f"demo world in {escape(str(directory))} is already built (seed {seed}); --force rebuilds it")
            return
        if not force:
            err.print(f"[bold red]error:[/] {escape(str(directory))}: exists and is not empty (use --force to rebuild)")
            raise typer.Exit(2)
        if not (directory / "world.json").is_file():
            err.print(
                f"[bold red]error:[/] {escape(str(directory))}: "
                "--force only replaces a demo world (no world.json there)"
            )
            raise typer.Exit(2)
        shutil.rmtree(directory)
    _quiet_libraries()
    import torch

    from recipe_opt.demo import DemoWorldConfig, build_world

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("building demo world", total=DemoWorldConfig().pretrain_steps)

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total)

        summary = build_world(directory, DemoWorldConfig(seed=seed), progress=progress)
    acc = ", ".join(f"{k} {v:.2f}" for k, v in summary.base_accuracy.items())
    console.print(
        f"demo world in [bold]{escape(str(summary.root))}[/]: v0 = Llama with {summary.n_parameters:,} parameters, "
        f"pre-trained in {summary.pretrain_seconds:.0f} s"
    )
    console.print(f"base exact match: {acc}")
    console.print("next: recipe-opt search studies/demo.yaml")


# ---- validate ---------------------------------------------------------------------------------
@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Study configs and/or search-space files.")],
) -> None:
    """Check study configs and search spaces; report every problem at once (exit 2 if any)."""
    from recipe_opt._yaml import load_yaml_mapping
    from recipe_opt.config import StudyConfig, load_study_config
    from recipe_opt.evaluate import find_tasks
    from recipe_opt.exceptions import ConfigProblem, EvaluationError
    from recipe_opt.space import SpaceFile, load_search_space

    problems: list[str] = []
    for path in files:
        sources: list[str] = []
        try:
            raw = load_yaml_mapping(path)
            # A file is read as whichever schema shares more of its keys (studies win ties).
            study_keys = len(raw.keys() & StudyConfig.model_fields.keys())
            if study_keys and study_keys >= len(raw.keys() & SpaceFile.model_fields.keys()):
                cfg = load_study_config(path)
                space = load_search_space(cfg.search_space_path, list(cfg.sources.new))
                ev = cfg.evaluation
                names = [*ev.new_task.tasks, *(t for s in ev.retention for t in s.tasks)]
                found: list[ConfigProblem] = []
                try:
                    find_tasks(cfg.tasks_dir_path, names, cfg.data_root_path)
                except EvaluationError as exc:
                    found.append(ConfigProblem(str(path), "evaluation", str(exc)))
                # Every data file is read and parsed (no tokenizer: that needs the model), so a
                # malformed row is found here, with its file and line, rather than at search time.
                sources, data_problems = _check_sources(cfg, str(path))
                found += data_problems
                if found:
                    raise ConfigError(found)
                kind = f"study config ({len(cfg.sources.new)} new sources, {len(ev.retention)} retention suites)"
            else:
                space = load_search_space(path, None)
                kind = "search space"
            console.print(f"[green]ok[/] {escape(str(path))}: {kind}")
            for line in sources:
                console.print(f"    {escape(line)}")
            for name, domain in space.describe():
                console.print(f"    {name:<18} {escape(domain)}")
        except ConfigError as exc:
            problems.extend(str(p) for p in exc.problems)
        except RecipeOptError as exc:
            problems.append(f"{path}: {exc}")
    for line in problems:
        err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    if problems:
        raise typer.Exit(2)


def _check_sources(cfg: StudyConfig, source: str) -> tuple[list[str], list[ConfigProblem]]:
    """Read every file source as the study would: one summary line each, or its problem."""
    from recipe_opt.data import parse_rows, read_rows
    from recipe_opt.exceptions import DataError

    lines: list[str] = []
    problems: list[ConfigProblem] = []
    for group in ("new", "replay"):
        for name, src in getattr(cfg.sources, group).items():
            where = f"sources.{group}.{name}"
            file = cfg.source_path(src)
            if file is None:
                lines.append(f"{where}: dataset {src.dataset} [{src.split}] (read when the study runs)")
                continue
            try:
                parsed = parse_rows(
                    name, read_rows(file), format=src.format, columns=src.columns, bad_rows=src.bad_rows
                )
            except DataError as exc:
                problems.append(ConfigProblem(source, where, str(exc)))
                continue
            line = f"{where}: {parsed.format.replace('_', '/')}, {parsed.rows} rows"
            if parsed.bad.total:
                line += f", {parsed.bad.total} left out: {parsed.bad.summary()}"
            lines.append(line)
    return lines, problems


# ---- search -----------------------------------------------------------------------------------
class _RichReporter:
    """Renders study progress: a bar over trials and one over the running trial's steps."""

    def __init__(self, progress: Any, n_trials: int | None, *, trials: bool = True) -> None:
        self.progress = progress
        self.trials_task = progress.add_task("trials", total=n_trials, visible=trials)
        self.steps_task = progress.add_task("proxy training", total=1, visible=False)

    def phase(self, message: str) -> None:
        self.progress.console.print(f"[dim]·[/] {escape(message)}")

    def trial_started(self, number: int, recipe: Any, proxy_steps: int) -> None:
        self.progress.update(
            self.steps_task,
            description=f"trial {number}: proxy training",
            completed=0,
            total=proxy_steps,
            visible=True,
        )

    def step(self, done: int, total: int, loss: float) -> None:
        if done == total or done % 5 == 0:
            self.progress.update(self.steps_task, completed=done, description=f"proxy training (loss {loss:.3f})")

    def trial_finished(self, summary: Any) -> None:
        self.progress.update(self.steps_task, visible=False)
        self.progress.advance(self.trials_task)
        if summary.state == "COMPLETE":
            v = summary.values
            vals = f"gain {v['gain']:+.3f}  forgetting {v['forgetting']:+.3f}  cost {v['cost']:.3g} TFLOP"
            colour = "green"
        else:
            vals = escape(summary.reason or "")
            colour = "yellow" if summary.state == "PRUNED" else "red"
        recipe = escape(summary.recipe.summary()) if summary.recipe else ""
        where = f"{escape(summary.worker)}, " if summary.worker else ""
        self.progress.console.print(
            f"[{colour}]trial {summary.number:>3} {summary.state:<8}[/] {vals}  "
            f"[dim]({where}{summary.seconds:.1f} s) {recipe}[/]",
            soft_wrap=True,
        )


def _pareto_table(study: optuna.Study, selected: SelectedRecipe | None) -> Table:
    from recipe_opt.recipe import Recipe
    from recipe_opt.study import ATTR_RECIPE, pareto_front, trial_values

    table = Table(
        title=f"Feasible Pareto front of {study.study_name} ({len(study.best_trials)} trials, all gates pass)",
        title_justify="left",
    )
    for col in (
        "trial",
        "gain ↑",
        "forgetting ↓",
        "cost TFLOP ↓",
        "mixture",
        "replay",
        "peak LR",
        "schedule",
        "rank",
        "steps",
    ):
        table.add_column(col, justify="right" if col not in ("mixture", "schedule") else "left")
    for t in sorted(pareto_front(study), key=lambda t: -trial_values(t)["gain"]):
        v = trial_values(t)
        r = Recipe.from_dict(t.user_attrs[ATTR_RECIPE])
        mark = " ★" if selected and selected.trial_number == t.number else ""
        table.add_row(
            f"{t.number}{mark}",
            f"{v['gain']:+.3f}",
            f"{v['forgetting']:+.3f}",
            f"{v['cost']:.3g}",
            " ".join(f"{k}={w:.2f}" for k, w in r.mixture.weights),
            f"{r.replay.ratio:.2f}",
            f"{r.schedule.peak_lr:.1e}",
            r.schedule.shape,
            str(r.adapter.rank),
            str(r.budget.steps),
        )
    return table


def _parse_weights(text: str | None) -> dict[str, float] | None:
    """`gain=1,forgetting=2,cost=0.5` -> dict; errors name the option."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"expected NAME=NUMBER pairs, but got {part!r}", param_hint="--weights") from None
        if not sep:
            raise typer.BadParameter(f"expected NAME=NUMBER pairs, but got {part!r}", param_hint="--weights")
    unknown = sorted(set(out) - {"gain", "forgetting", "cost"})
    if unknown:
        raise typer.BadParameter(f"unknown objective(s) {unknown}", param_hint="--weights")
    return out


def _trial_summary(study: optuna.Study) -> tuple[dict[str, int], list[str]]:
    """Trial counts by state, and one line per distinct failure or pruning reason."""
    import collections

    import optuna

    from recipe_opt.study import failure_reason

    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in optuna.trial.TrialState}
    reasons: collections.Counter[str] = collections.Counter()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)):
        reason = failure_reason(t) or "no reason recorded"
        # Group "stopped early: dominated by 3 of 7 ..." lines by their kind, keep the rest whole.
        key = reason.split(" by ")[0] if reason.startswith("stopped early") else reason
        reasons[f"{t.state.name.lower()}: {key}"] += 1
    return counts, [f"{n} x {r}" for r, n in reasons.most_common()]


def _select_and_record(
    cfg: StudyConfig,
    space: SearchSpace,
    study: optuna.Study,
    runner: Any,
    *,
    policy: str | None,
    weights: dict[str, float] | None,
    reruns: int | None,
    top_k: int | None,
    report: bool,
) -> SelectedRecipe:
    from recipe_opt.study import ATTR_BASE_EVAL, record_selection, select_recipe

    rerun_fn = None
    if (reruns if reruns is not None else cfg.selection.reruns) > 0:
        from recipe_opt.evaluate import Evaluation

        runner.build()
        base_eval = Evaluation.from_dict(study.user_attrs[ATTR_BASE_EVAL])

        def rerun_fn(recipe: Recipe, seed: int) -> tuple[dict[str, float], dict[str, float]]:
            from dataclasses import replace

            console.print(f"[dim]·[/] re-running {recipe.short_hash} with seed {seed}")
            m = runner.measure(replace(recipe, seed=seed), base_eval)
            return dict(m.values), dict(m.forgetting_per_suite)

    selected = select_recipe(study, cfg, policy=policy, weights=weights, rerun=rerun_fn, reruns=reruns, top_k=top_k)
    recipe_path, _ = record_selection(cfg, study, space, selected)
    console.print(_pareto_table(study, selected))
    console.print(
        f"[bold]selected trial {selected.trial_number}[/] ({selected.policy}): {escape(selected.recipe.summary())}"
    )
    console.print(f"  rule: {escape(selected.rule)}")
    console.print(f"  why:  {escape(selected.reason)}")
    console.print(
        f"  recipe written to {escape(str(recipe_path))} and to the lineage store "
        f"({cfg.family}/{cfg.base_version} -> {cfg.name})"
    )
    if report:
        write_reports(cfg, study, indent="  ")
    return selected


def write_reports(cfg: StudyConfig, study: optuna.Study, *, indent: str = "") -> None:
    """The study's report (with summary.md) and its family's cross-cycle report, beside it."""
    from recipe_opt.lineage import LineageStore
    from recipe_opt.report import family_report_dir, write_family_report, write_report

    path = write_report(study, cfg.output_path, storage_url=cfg.storage_url)
    console.print(f"{indent}report: {escape(str(path))} (and summary.md beside it)")
    with LineageStore(cfg.storage_url) as store:
        if cfg.family in store.families():
            fam = write_family_report(
                store, cfg.storage_url, cfg.family, family_report_dir(cfg.output_path.parent, cfg.family)
            )
            console.print(f"{indent}family report: {escape(str(fam))} (every cycle of {escape(cfg.family)})")


SamplerOption = Annotated[str | None, typer.Option(help="Override the config's sampler: tpe, gp, nsga2, random, qmc.")]
EarlyStoppingOption = Annotated[
    bool | None, typer.Option("--early-stopping/--no-early-stopping", help="Override rung-based early stopping.")
]
TimeoutOption = Annotated[float | None, typer.Option(min=1, help="Stop starting trials after this many seconds.")]
MaxCostOption = Annotated[
    float | None,
    typer.Option("--max-cost", min=0, help="Stop once the study's summed proxy compute passes this many TFLOP."),
]
NTrialsOption = Annotated[
    int | None,
    typer.Option("--n-trials", min=1, help="Total finished trials the study is to reach (overrides the config)."),
]
WarmStartOption = Annotated[
    list[str] | None,
    typer.Option(
        "--warm-start",
        help="Seed a new study from earlier cycles: `auto` (the cycle that produced the base version), "
        "a study name (repeatable), or `none`. Overrides the config's warm_start.studies.",
    ),
]
WarmStartPriorsOption = Annotated[
    bool | None,
    typer.Option(
        "--warm-start-priors/--no-warm-start-priors",
        help="Also add the source studies' complete trials as prior observations for the sampler.",
    ),
]


def _warm_plan(cfg: StudyConfig, space: SearchSpace, warm_start: list[str] | None, priors: bool | None) -> Any:
    """The warm-start planner `StudyRunner.prepare` calls for a new study, or None."""
    sources = cfg.warm_start.studies if warm_start is None else [w for w in warm_start if w != "none"]
    if "auto" in sources and len(sources) > 1:
        raise _fail(ConfigError.single("--warm-start", "", f"`auto` stands alone, but got {sources}"))
    with_priors = cfg.warm_start.priors if priors is None else priors
    if not sources:
        return None

    def plan() -> Any:
        from recipe_opt.lineage import LineageStore
        from recipe_opt.study import plan_warm_start

        with LineageStore(cfg.storage_url) as store:
            return plan_warm_start(
                cfg, space, sources, store=store, max_recipes=cfg.warm_start.max_recipes, priors=with_priors
            )

    return plan


def _threads() -> int:
    """Torch threads: OMP_NUM_THREADS when set (`search --workers N` splits the cores), else all."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, os.cpu_count() or 1)


def _stop_on_sigterm() -> None:
    """SIGTERM (`kill`, Kubernetes stopping a pod) stops like Ctrl-C: the running trial is failed
    with its reason and queued again, and the process exits."""
    import signal

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; let the cleanup finish
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


@app.command()
def search(
    config: Annotated[Path, typer.Argument(help="Study config YAML (e.g. studies/demo.yaml).")],
    n_trials: NTrialsOption = None,
    timeout: TimeoutOption = None,
    max_cost: MaxCostOption = None,
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
    try:
        cfg, space = _load(config, sampler=sampler, early_stopping=early_stopping, storage=storage)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    devices: list[str] = []
    if workers is not None:
        from recipe_opt.cli._workers import visible_devices
        from recipe_opt.study import is_server_url

        if not is_server_url(cfg.storage_url):
            raise _fail(
                ConfigError.single(
                    "--workers",
                    "",
                    f"worker processes share the study through a database server, but the storage is "
                    f"{cfg.storage_display} (SQLite serialises writers: 'database is locked', optuna#820); "
                    "use --storage postgresql://...",
                )
            )
        devices = visible_devices()
        if devices and workers > len(devices):
            raise _fail(
                ConfigError.single(
                    "--workers",
                    "",
                    f"one trial per GPU: `workers <= GPUs` must hold, but got (workers={workers}, "
                    f"GPUs={len(devices)}: {','.join(devices)})",
                )
            )
    plan = _warm_plan(cfg, space, warm_start, warm_start_priors)
    _quiet_libraries()
    import torch

    from recipe_opt.study import StudyRunner

    torch.set_num_threads(_threads())
    _stop_on_sigterm()
    started = time.perf_counter()
    target = n_trials or cfg.trials.n_trials
    where = ""
    if workers is not None:
        where = f", {workers} workers on " + (f"GPUs {','.join(devices[:workers])}" if devices else "CPU")
    console.print(
        f"study [bold]{cfg.name}[/]: {target or 'unbounded'} trials, sampler {cfg.sampler.name}, "
        f"early stopping {'on' if cfg.early_stopping.enabled else 'off'}, objectives {', '.join(cfg.objectives)}, "
        f"storage {escape(cfg.storage_display)}{where}"
    )
    with _progress() as progress:
        reporter = _RichReporter(progress, target)
        runner = StudyRunner(cfg, space, reporter)
        try:
            if workers is None:
                study = runner.run(n_trials=n_trials, timeout=timeout, max_cost=max_cost, warm_start=plan)
            else:
                from recipe_opt.cli._workers import run_local_workers

                study = runner.prepare(n_trials=n_trials, warm_start=plan)
                runner.release()  # the workers load their own copies; the GPUs are theirs now
                passthrough = _passthrough(sampler, early_stopping, timeout, max_cost)
                code = run_local_workers(cfg, config, study, workers, devices, passthrough, reporter)
                if code is not None:
                    raise typer.Exit(code)
        except RecipeOptError as exc:
            raise _fail(exc) from None
        except KeyboardInterrupt:
            progress.stop()
            err.print(
                "interrupted: finished trials are stored, a running trial was failed and queued again; "
                "run the same command again to resume"
            )
            raise typer.Exit(130) from None
    _finish_search(cfg, space, config, study, runner, started, report)


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


def _finish_search(
    cfg: StudyConfig, space: SearchSpace, config: Path, study: optuna.Study, runner: Any, started: float, report: bool
) -> None:
    from recipe_opt.study import proxy_compute

    counts, reasons = _trial_summary(study)
    failed_now = sum(
        t.state.name == "FAIL" for t in study.get_trials(deepcopy=False) if t.number >= runner.first_new_trial
    )
    summary = (
        f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed "
        f"({failed_now} in this run); proxy compute {proxy_compute(study):.3g} TFLOP; "
        f"{time.perf_counter() - started:.0f} s"
    )
    code = 3 if failed_now else 0
    try:
        _select_and_record(cfg, space, study, runner, policy=None, weights=None, reruns=None, top_k=None, report=report)
    except RecipeOptError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        code = 1
    console.print(summary)
    for line in reasons:
        console.print(f"  {escape(line)}")
    if code != 1:
        console.print(
            f"next: read the report, then `recipe-opt apply {escape(str(config))}` trains the recipe at full "
            f"fidelity and registers {cfg.family}/{cfg.apply_version} if it passes the release gates"
        )
    if code:
        raise typer.Exit(code)


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
    try:
        cfg, space = _load(config, storage=storage)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    plan = _warm_plan(cfg, space, warm_start, warm_start_priors)
    _quiet_libraries()
    import optuna
    import torch

    from recipe_opt.study import ATTR_BUDGET, StudyRunner, count_trials

    torch.set_num_threads(_threads())
    with _progress() as progress:
        runner = StudyRunner(cfg, space, _RichReporter(progress, None, trials=False))
        try:
            study = runner.prepare(n_trials=n_trials, warm_start=plan)
        except RecipeOptError as exc:
            raise _fail(exc) from None
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
    try:
        cfg, space = _load(config, sampler=sampler, early_stopping=early_stopping, storage=storage, migrate=False)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    _quiet_libraries()
    import torch

    from recipe_opt.study import ATTR_BUDGET, StudyRunner, WorkerInfo, count_trials

    torch.set_num_threads(_threads())
    _stop_on_sigterm()
    info = WorkerInfo(worker_id or WorkerInfo.default_id())
    with _progress() as progress:
        reporter = _RichReporter(progress, None)
        runner = StudyRunner(cfg, space, reporter)
        try:
            study = runner.attach(info)
            budget = study.user_attrs.get(ATTR_BUDGET)
            progress.update(reporter.trials_task, description="trials run here")
            progress.console.print(
                f"worker [bold]{escape(info.id)}[/] joins study [bold]{cfg.name}[/] on "
                f"{escape(cfg.storage_display)} (budget {budget}, GPUs: {info.devices})"
            )
            outcome = runner.work(study, timeout=timeout, max_cost=max_cost, worker=info)
        except StorageError as exc:  # the database went away mid-run: not bad input; a restart rejoins
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None
        except RecipeOptError as exc:
            raise _fail(exc) from None
        except KeyboardInterrupt:
            progress.stop()
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


@app.command()
def select(
    config: Annotated[Path, typer.Argument(help="Study config YAML of a study that has run.")],
    policy: Annotated[str | None, typer.Option(help="gain-within-gates (default), knee, or utility.")] = None,
    weights: Annotated[str | None, typer.Option(help="Utility weights, e.g. gain=1,forgetting=2,cost=0.5.")] = None,
    reruns: Annotated[
        int | None, typer.Option(min=0, max=20, help="Extra seeds per top candidate before deciding.")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Candidates to re-run.")] = None,
    report: Annotated[bool, typer.Option(help="Rewrite the HTML report.")] = True,
    storage: StorageOption = None,
) -> None:
    """Re-select the recipe of a finished study under a policy, without running new trials.

    Only `--reruns` trains again (the top candidates, with extra seeds); the study's trials stay.
    """
    from recipe_opt.config import SELECTION_POLICIES

    if policy is not None and policy not in SELECTION_POLICIES:
        raise typer.BadParameter(
            f"must be one of {', '.join(SELECTION_POLICIES)}, but got {policy!r}", param_hint="--policy"
        )
    parsed = _parse_weights(weights)
    try:
        cfg, space = _load(config, storage=storage)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    _quiet_libraries()
    from recipe_opt.study import StudyRunner

    study = _existing_study(cfg, config)
    runner = StudyRunner(cfg, space)
    try:
        _select_and_record(
            cfg, space, study, runner, policy=policy, weights=parsed, reruns=reruns, top_k=top_k, report=report
        )
    except RecipeOptError as exc:
        raise _fail(exc) from None


def _existing_study(cfg: StudyConfig, config: Path) -> optuna.Study:
    import optuna

    db = cfg.storage_url.removeprefix("sqlite:///")
    if cfg.storage_url.startswith("sqlite:///") and not Path(db).is_file():
        err.print(
            f"[bold red]error:[/] {escape(str(config))}: no study database at {escape(db)} "
            "(run `recipe-opt search` first)"
        )
        raise typer.Exit(2)
    try:
        return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    except KeyError:
        err.print(
            f"[bold red]error:[/] {escape(str(config))}: study {cfg.name!r} not found in {escape(cfg.storage_display)}"
        )
        raise typer.Exit(2) from None


@app.command("report")
def report_cmd(
    config: Annotated[Path, typer.Argument(help="Study config YAML.")], storage: StorageOption = None
) -> None:
    """(Re)write the HTML report of a study from its storage, without running trials.

    Also rewrites the family's cross-cycle report (`reports/<family>-lineage/`)."""
    from recipe_opt.config import load_study_config

    try:
        cfg = load_study_config(config, check_paths=False, storage=storage)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    study = _existing_study(cfg, config)
    write_reports(cfg, study)


@app.command()
def dashboard(
    config: Annotated[Path, typer.Argument(help="Study config YAML of a study that has run.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    storage: StorageOption = None,
) -> None:
    """Open optuna-dashboard on the study's storage (it is Optuna's own RDB storage); Ctrl-C stops it."""
    from recipe_opt.config import load_study_config

    try:
        cfg = load_study_config(config, check_paths=False, storage=storage)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    _existing_study(cfg, config)
    try:
        import optuna_dashboard
    except ImportError:
        err.print("[bold red]error:[/] optuna-dashboard is not installed: pip install 'recipe-opt[dashboard]'")
        raise typer.Exit(2) from None
    console.print(
        f"optuna-dashboard for study {escape(cfg.name)} on {escape(cfg.storage_display)}: "
        f"http://{host}:{port}/dashboard/ (Ctrl-C stops it)"
    )
    try:
        optuna_dashboard.run_server(cfg.storage_url, host=host, port=port)
    except OSError as exc:  # port in use, no permission
        err.print(f"[bold red]error:[/] cannot listen on {escape(host)}:{port}: {escape(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


def main() -> None:
    try:
        app()
    except RecipeOptError as exc:  # anything a command did not catch itself
        code = _fail(exc).exit_code
        sys.exit(code)
