"""The `recipe-opt` application: the typer app, its consoles, the options several commands share,
and the one place errors become output.

Each command lives in its own module (`_search.py`, `_apply.py`, ...), registered on `app` by
`recipe_opt.cli`. Heavy libraries (torch, transformers, peft, lm-eval) are imported inside the
commands that need them, so `recipe-opt --help` starts in well under a second.

Exit status: 0 success, 1 the command ran but could not do what it was for (nothing selectable,
a rejected release, a storage that stayed unreachable), 2 bad input (config, data, model,
storage, option) reported as one line per problem naming the file and the field, 3 a recipe was
selected but some trials failed, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from recipe_opt.config import STORAGE_ENV
from recipe_opt.exceptions import RecipeOptError

__all__ = [
    "STORAGE_ENV",
    "StorageOption",
    "app",
    "console",
    "demo_app",
    "err",
    "error",
    "main",
    "quiet_libraries",
    "stop_on_sigterm",
    "thread_count",
    "torch_threads",
]


def error(line: str) -> None:
    """One `error: ...` line on stderr."""
    err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)


class _OneLineErrors(TyperGroup):
    """Every error a command does not handle itself ends here, as one line per problem:

    * usage errors (an option out of range, an unknown option, a missing argument):
      `error: --n-trials: ...`, exit status 2 (click's default is a usage line, a hint and a box);
    * a `RecipeOptError`: its lines, exit status its `exit_code` (2, bad input, unless it says
      otherwise: a database that stayed unreachable is 1).
    Anything else is a bug and keeps its traceback.
    """

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
            error(message)
            sys.exit(2)
        except RecipeOptError as exc:
            for line in exc.lines:
                error(line)
            sys.exit(exc.exit_code)
        except Abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
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


def quiet_libraries() -> None:
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


def thread_count(env: str | None, cpus: int, busy: int) -> int:
    """Torch threads for one process: `OMP_NUM_THREADS` when set (`search --workers N` splits the
    cores that way); else the cores not already busy. On a shared 2-core machine two processes
    each taking both cores made training 10-30x slower, not 2x: oversubscribed cores thrash."""
    if env is not None:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(cpus, cpus - busy))


def _busy_cores() -> int:
    """Other processes running right now: the kernel's count of runnable tasks (/proc/loadavg),
    less this one, the least of five looks 20 ms apart (the load average would still count a job
    that ended a minute ago). 0 where the kernel does not say."""
    import time

    seen = []
    for _ in range(5):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                seen.append(int(fh.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return 0
        time.sleep(0.02)
    return max(0, min(seen))


def torch_threads() -> None:
    """Set torch's threads by `thread_count`: the environment, the cores this process may use
    (its CPU affinity) and the processes already running on them."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(thread_count(os.environ.get("OMP_NUM_THREADS"), cpus, _busy_cores()))


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, Kubernetes stopping a pod) stops like Ctrl-C: the running trial is failed
    with its reason and queued again, and the process exits."""
    import signal

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; let the cleanup finish
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


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


def main() -> None:
    app()
