"""Local lm-eval task YAMLs: the single source of truth for what each eval task scores.

Task files are plain lm-eval task configs. They are read with `yaml.safe_load`, so lm-eval's
`!function` tags (which import and run code) are refused. A relative `data_files` path is
resolved against the study's `data_root`, not the working directory (lm-eval's own rule), so a
study runs the same from any directory.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recipe_opt.exceptions import EvaluationError, first_line

__all__ = ["TaskDef", "builtin_task_names", "find_tasks", "load_task"]


@dataclass(frozen=True)
class TaskDef:
    """One lm-eval task: its config (with resolved data paths) and the file it came from, or,
    with `builtin`, one of lm-eval's own tasks (hellaswag, arc_easy, mmlu, ...) by name."""

    name: str
    config: Mapping[str, Any]
    source: Path
    builtin: bool = False

    @property
    def data_file(self) -> Path:
        files = self.config.get("dataset_kwargs", {}).get("data_files", {})
        split = self.config.get("test_split", "test")
        path = files.get(split) if isinstance(files, Mapping) else files
        if not isinstance(path, str):
            raise EvaluationError(f"{self.source}: `dataset_kwargs.data_files.{split}` must be a path")
        return Path(path)

    @property
    def metrics(self) -> list[tuple[str, bool]]:
        """(metric, higher_is_better) pairs the task declares."""
        out = []
        for m in self.config.get("metric_list", []):
            out.append((str(m["metric"]), bool(m.get("higher_is_better", True))))
        return out

    def lm_eval_config(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.config))


def load_task(path: Path, data_root: Path) -> TaskDef:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.constructor.ConstructorError as exc:
        raise EvaluationError(
            f"{path}: uses a YAML tag ({exc.problem}); recipe-opt loads task files as data and "
            "never runs code from them"
        ) from None
    except yaml.YAMLError as exc:
        raise EvaluationError(f"{path}: not valid YAML ({first_line(exc)})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("task"), str):
        raise EvaluationError(f"{path}: an lm-eval task file needs a `task:` name")
    config = copy.deepcopy(raw)
    files = config.get("dataset_kwargs", {}).get("data_files")
    if isinstance(files, dict):
        config["dataset_kwargs"]["data_files"] = {
            split: str(p if Path(p).is_absolute() else (data_root / p).resolve()) for split, p in files.items()
        }
    elif isinstance(files, str):
        config["dataset_kwargs"]["data_files"] = str(
            files if Path(files).is_absolute() else (data_root / files).resolve()
        )
    return TaskDef(name=raw["task"], config=config, source=path)


def find_tasks(tasks_dir: Path, names: Sequence[str], data_root: Path) -> dict[str, TaskDef]:
    """Index `tasks_dir/*.yaml` by task name and return the named tasks.

    An unknown name is an error that lists what exists, with the closest match first.
    """
    import difflib

    if not tasks_dir.is_dir():
        raise EvaluationError(f"{tasks_dir}: eval task directory not found")
    index: dict[str, TaskDef] = {}
    for path in sorted(tasks_dir.glob("*.yaml")):
        task = load_task(path, data_root)
        if task.name in index:
            raise EvaluationError(f"{path}: task name {task.name!r} is also defined in {index[task.name].source}")
        index[task.name] = task
    found: dict[str, TaskDef] = {}
    missing = [n for n in names if n not in index]
    builtin = builtin_task_names() if missing else frozenset()
    for name in names:
        if name in index:
            found[name] = index[name]
        elif name in builtin:
            # lm-eval's own task: its dataset comes from the hub (or the user's HF cache) when
            # the task is built, so an offline machine without it fails there, with that reason.
            found[name] = TaskDef(name=name, config={"task": name}, source=Path(f"lm-eval:{name}"), builtin=True)
        else:
            close = difflib.get_close_matches(name, [*index, *builtin], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EvaluationError(
                f"eval task {name!r} is not defined in {tasks_dir} nor one of lm-eval's own tasks.{hint} "
                f"Local: {', '.join(sorted(index)) or 'none'}"
            )
    return found


_BUILTIN: frozenset[str] | None = None


def builtin_task_names() -> frozenset[str]:
    """Names of lm-eval's own tasks and groups (indexed once per process, about 8 s)."""
    global _BUILTIN
    if _BUILTIN is None:
        import logging

        from lm_eval.tasks import TaskManager

        previous = logging.getLogger("lm_eval").level
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
        try:
            _BUILTIN = frozenset(TaskManager().all_tasks)
        finally:
            logging.getLogger("lm_eval").setLevel(previous)
    return _BUILTIN
