"""`recipe-opt validate`: check study configs and search spaces, every problem at once.

A file is read as whichever schema shares more of its keys (studies win ties). A study config is
checked as the study would use it: its search space, its eval tasks, and every data file read
and parsed, so a malformed row is found here, with its file and line, rather than at search
time; so are the tokenizer and the storage (reached, and for SQLite written to a probe file).
When all of that holds, the model is loaded and a few proxy steps are measured, to show what one
trial will cost and take and to refuse a space whose single trial would not fit the study's
budget (`_projection`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recipe_opt._yaml import load_yaml_mapping
from recipe_opt.config import StudyConfig, load_study_config
from recipe_opt.data import parse_rows, read_rows
from recipe_opt.evaluate import find_tasks
from recipe_opt.exceptions import (
    ConfigError,
    ConfigProblem,
    DataError,
    EvaluationError,
    RecipeOptError,
    StudyError,
    TrainingError,
)
from recipe_opt.space import SpaceFile, load_search_space
from recipe_opt.study._base import resolve_space
from recipe_opt.study._ladder import study_plan
from recipe_opt.study._progress import SilentReporter
from recipe_opt.study._projection import project
from recipe_opt.study._setup import build_setup
from recipe_opt.study._storage import check_storage
from recipe_opt.train import load_tokenizer

__all__ = ["FileCheck", "check_sources", "validate_file"]


@dataclass
class FileCheck:
    """What `validate` found in one file: its kind and the lines to show, or its problems."""

    path: Path
    kind: str = ""
    details: list[str] = field(default_factory=list)  # one line per source read
    domains: list[tuple[str, str]] = field(default_factory=list)  # the space's parameters
    problems: list[str] = field(default_factory=list)


def check_sources(cfg: StudyConfig, source: str) -> tuple[list[str], list[ConfigProblem]]:
    """Read every file source as the study would: one summary line each, or its problem."""
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


def validate_file(path: Path) -> FileCheck:
    out = FileCheck(path)
    try:
        raw = load_yaml_mapping(path)
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
            out.details, data_problems = check_sources(cfg, str(path))
            found += data_problems
            if cfg.base_model_kind == "dir":  # a lineage reference or hub id is resolved when the study runs
                try:
                    load_tokenizer(cfg.base_model_path, trust_remote_code=cfg.trust_remote_code)
                except TrainingError as exc:
                    found.append(ConfigProblem(str(path), "base_model", str(exc)))
            try:
                check_storage(cfg)
            except StudyError as exc:
                found.append(ConfigProblem(str(path), "storage", str(exc)))
            if not found and cfg.base_model_kind == "dir":
                # What one trial will cost and take, from a measured step of the real trainer
                # (the model and data are loaded for it, as the search would load them).
                resolved = resolve_space(cfg, space)
                projection = project(cfg, resolved, build_setup(cfg, SilentReporter()))
                out.details += projection.lines()
                found += projection.problems(resolved, max_cost=cfg.trials.max_cost, timeout=cfg.trials.timeout)
                if cfg.trials.budget is not None:  # a budgeted search: how it will spend the budget
                    try:
                        out.details += study_plan(cfg, resolved, projection).lines()
                    except ConfigError as exc:
                        found += exc.problems
            if found:
                raise ConfigError(found)
            out.kind = f"study config ({len(cfg.sources.new)} new sources, {len(ev.retention)} retention suites)"
        else:
            space = load_search_space(path, None)
            out.kind = "search space"
        out.domains = space.describe()
    except ConfigError as exc:
        out.problems = exc.lines
    except RecipeOptError as exc:
        out.problems = [f"{path}: {exc}"]
    return out
