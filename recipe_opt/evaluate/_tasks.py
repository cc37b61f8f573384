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

from recipe_opt.exceptions import EvaluationError

__all__ = ["TaskDef", "find_tasks", "load_task"]


@dataclass(frozen=True)
class TaskDef:
    """One lm-eval task: its config (with resolved data paths) and the file it came from."""

    name: str
    config: Mapping[str, Any]
    source: Path

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
        raise EvaluationError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
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
    for name in names:
        if name not in index:
            close = difflib.get_close_matches(name, list(index), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EvaluationError(
                f"eval task {name!r} is not defined in {tasks_dir}.{hint} Known: {', '.join(sorted(index)) or 'none'}"
            )
        found[name] = index[name]
    return found
