"""Study config: what to update, with which data, scored how, searched how long, stored where.

Relative paths in a study file are resolved against the file's own directory, so a study runs
the same from any working directory. The default storage is a SQLite file beside the config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recipe_opt._yaml import load_yaml_mapping, validate_model
from recipe_opt.exceptions import ConfigError, ConfigProblem

__all__ = [
    "OBJECTIVES",
    "EvaluationConfig",
    "ProxyConfig",
    "ReplayPoolConfig",
    "SamplerConfig",
    "SelectionConfig",
    "SourceConfig",
    "StudyConfig",
    "SuiteConfig",
    "TrialBudget",
    "load_study_config",
    "masked_url",
]

# Every objective recipe-opt knows, with its direction. The study chooses which to optimise.
OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {
    "gain": "maximize",  # new-task suite score after minus before
    "forgetting": "minimize",  # weighted retention-suite score before minus after
    "cost": "minimize",  # projected FLOPs of the full update (TFLOP)
}
Objective = Literal["gain", "forgetting", "cost"]
_ALL_OBJECTIVES: tuple[Objective, ...] = ("gain", "forgetting", "cost")
SAMPLERS = ("tpe", "gp", "nsga2", "random", "qmc")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """A new-data source: a prompt/completion JSONL file (path relative to `data_root`)."""

    path: str


class ReplayPoolConfig(SourceConfig):
    """An old-data replay pool; pools split the recipe's replay share by `weight`."""

    weight: float = Field(default=1.0, gt=0)


class SourcesConfig(_Model):
    new: dict[str, SourceConfig] = Field(min_length=1, description="The update's new-data sources.")
    replay: dict[str, ReplayPoolConfig] = Field(default_factory=dict, description="Old-data replay pools.")

    @model_validator(mode="after")
    def _disjoint(self) -> SourcesConfig:
        clash = sorted(set(self.new) & set(self.replay))
        if clash:
            raise ValueError(f"names used both as new source and replay pool: {clash}")
        return self


class SuiteConfig(_Model):
    """A group of lm-eval tasks scored as the mean of their `acc`."""

    name: str
    tasks: list[str] = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, description="Weight in the aggregate forgetting.")


class EvaluationConfig(_Model):
    backend: Literal["lm-eval", "native"] = Field(
        default="lm-eval",
        description="lm-eval's simple_evaluate, or the native batched scorer (same metric, faster).",
    )
    tasks_dir: str = Field(description="Directory of lm-eval task YAMLs.")
    new_task: SuiteConfig
    retention: list[SuiteConfig] = Field(min_length=1)
    batch_size: int = Field(default=64, ge=1)
    limit: int | None = Field(default=None, ge=1, description="Items per task (proxy speed).")

    @model_validator(mode="after")
    def _unique(self) -> EvaluationConfig:
        names = [self.new_task.name] + [s.name for s in self.retention]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite names must be unique, but got duplicates {dupes}")
        return self


class ProxyConfig(_Model):
    fraction: float = Field(gt=0, le=1, description="Share of the recipe's full-update steps the proxy runs.")
    batch_size: int = Field(ge=1)
    max_seq_len: int = Field(ge=4)
    min_steps: int = Field(default=10, ge=1)
    max_grad_norm: float = Field(default=1.0, ge=0)
    device: Literal["cpu", "cuda", "auto"] = "auto"


class TrialBudget(_Model):
    n_trials: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0, description="Seconds.")

    @model_validator(mode="after")
    def _some(self) -> TrialBudget:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("set `n_trials`, `timeout` or both")
        return self


class SamplerConfig(_Model):
    name: Literal["tpe", "gp", "nsga2", "random", "qmc"] = "tpe"
    n_startup_trials: int = Field(default=8, ge=0)


class SelectionConfig(_Model):
    """The documented rule: among Pareto trials whose forgetting is at most `max_forgetting`,
    the one with the highest gain (ties: lower cost). If none qualifies, the Pareto trial with
    the least forgetting is selected and the selection says so."""

    max_forgetting: float = Field(default=0.05, ge=0)


class StudyConfig(_Model):
    name: str = Field(description="Study name (letters, digits, . _ -).")
    family: str = Field(default="demo", description="Model family in the lineage store.")
    base_version: str = Field(default="v0", description="Lineage name of the base model version.")
    base_model: str = Field(description="HF checkpoint directory of the model being updated.")
    data_root: str
    sources: SourcesConfig
    search_space: str
    evaluation: EvaluationConfig
    objectives: list[Objective] = Field(default_factory=lambda: list(_ALL_OBJECTIVES), min_length=2)
    proxy: ProxyConfig
    trials: TrialBudget
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    seed: int = 0
    storage: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite beside this file.")
    output_dir: str | None = Field(default=None, description="Default: ../reports/<name>.")

    # Set by the loader, not by users.
    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-100 characters of letters, digits, '.', '_' or '-'")
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        if "gain" not in v:
            raise ValueError("must include `gain`")
        if len(set(v)) != len(v):
            raise ValueError(f"must not repeat, but got {v}")
        return v

    # ---- resolved paths ------------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def base_model_path(self) -> Path:
        return self.resolve(self.base_model)

    @property
    def data_root_path(self) -> Path:
        return self.resolve(self.data_root)

    @property
    def search_space_path(self) -> Path:
        return self.resolve(self.search_space)

    @property
    def tasks_dir_path(self) -> Path:
        return self.resolve(self.evaluation.tasks_dir)

    @property
    def output_path(self) -> Path:
        return self.resolve(self.output_dir) if self.output_dir else self.resolve(f"../reports/{self.name}")

    @property
    def storage_url(self) -> str:
        if self.storage:
            if self.storage.startswith("sqlite:///") and not self.storage.startswith("sqlite:////"):
                rel = self.storage[len("sqlite:///") :]
                return f"sqlite:///{self.resolve(rel)}"
            return self.storage
        return f"sqlite:///{self.resolve(self.name + '.db')}"

    @property
    def storage_display(self) -> str:
        """`storage_url` with any password replaced by ***: for messages, logs and records."""
        return masked_url(self.storage_url)

    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [OBJECTIVES[o] for o in self.objectives]

    def source_path(self, src: SourceConfig) -> Path:
        p = Path(src.path)
        return p if p.is_absolute() else (self.data_root_path / p).resolve()


def masked_url(url: str) -> str:
    """A database URL with its password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"


def _path_problems(cfg: StudyConfig, source: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    checks: list[tuple[str, Path, str]] = [
        ("base_model", cfg.base_model_path, "dir"),
        ("data_root", cfg.data_root_path, "dir"),
        ("search_space", cfg.search_space_path, "file"),
        ("evaluation.tasks_dir", cfg.tasks_dir_path, "dir"),
    ]
    for group in ("new", "replay"):
        for name, src in getattr(cfg.sources, group).items():
            checks.append((f"sources.{group}.{name}.path", cfg.source_path(src), "file"))
    for field, path, kind in checks:
        ok = path.is_dir() if kind == "dir" else path.is_file()
        if not ok:
            what = "directory" if kind == "dir" else "file"
            hint = " (run `recipe-opt demo init` first?)" if field in ("base_model", "data_root") else ""
            problems.append(ConfigProblem(source, field, f"{what} not found: {path}{hint}"))
    url = cfg.storage_url
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        problems.append(ConfigProblem(source, "storage", f"not a database URL: {masked_url(url)!r}"))
    return problems


def load_study_config(path: str | Path, *, check_paths: bool = True) -> StudyConfig:
    """Load and validate a study YAML; raises `ConfigError` with every problem found."""
    source = str(path)
    raw: dict[str, Any] = load_yaml_mapping(path)
    cfg = validate_model(StudyConfig, raw, source)
    cfg = cfg.model_copy(update={"config_path": Path(path).resolve()})
    if check_paths:
        problems = _path_problems(cfg, source)
        if problems:
            raise ConfigError(problems)
    return cfg
