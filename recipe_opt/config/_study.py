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
    "SELECTION_POLICIES",
    "ApplyConfig",
    "EarlyStoppingConfig",
    "EvaluationConfig",
    "GatesConfig",
    "ProxyConfig",
    "ReplayPoolConfig",
    "SamplerConfig",
    "SelectionConfig",
    "SourceConfig",
    "StudyConfig",
    "SuiteConfig",
    "TrialBudget",
    "WarmStartConfig",
    "WorkersConfig",
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
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Our field names per data format; `columns:` maps them to a source's own column names.
DATA_FIELDS = ("prompt", "completion", "messages", "text")
DATA_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")


class SourceConfig(_Model):
    """A data source: a file (`path`, relative to `data_root`) or a `datasets` dataset."""

    path: str | None = Field(default=None, description="JSONL, JSON, Parquet or CSV file, relative to data_root.")
    dataset: str | None = Field(
        default=None, description="A `datasets` dataset name or local dataset directory (load_dataset)."
    )
    subset: str | None = Field(default=None, description="The dataset's configuration name, if it has several.")
    split: str = Field(default="train", description="The dataset split to read.")
    format: Literal["auto", "prompt_completion", "chat", "text"] = Field(
        default="auto",
        description="prompt/completion pairs, chat `messages` (loss on assistant turns), or plain `text`; "
        "auto: decided from the first row's fields.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="Our field name -> the source's column, e.g. {prompt: question}."
    )
    bad_rows: Literal["error", "skip"] = Field(
        default="error",
        description="error: stop at the first malformed row (file and line named); skip: leave malformed "
        "rows out, counted and reported.",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> SourceConfig:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of `path` (a file) or `dataset` (a `datasets` dataset)")
        if self.path is not None and not self.path.lower().endswith(DATA_FILE_SUFFIXES):
            raise ValueError(f"`path` must end in one of {', '.join(DATA_FILE_SUFFIXES)}, but got {self.path!r}")
        unknown = sorted(set(self.columns) - set(DATA_FIELDS))
        if unknown:
            raise ValueError(f"`columns` maps unknown field(s) {unknown}; ours are {list(DATA_FIELDS)}")
        return self


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
    lm_eval: dict[str, Any] = Field(
        default_factory=dict,
        description="Options passed through to lm-eval's simple_evaluate (num_fewshot, apply_chat_template, "
        "fewshot_as_multiturn, system_instruction, ...); lm-eval backend only.",
    )

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
    explode_factor: float = Field(
        default=10.0, gt=1, description="Stop a trial whose loss exceeds this many times its first loss."
    )
    device: Literal["cpu", "cuda", "auto"] = "auto"
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        default="no", description="Autocast the forward pass (accelerate); bf16 on GPUs that support it."
    )
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, description="Micro-batches per optimiser step (must divide batch_size); same recipe."
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less memory, ~30% more time."
    )

    @model_validator(mode="after")
    def _accumulation_divides(self) -> ProxyConfig:
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                "`gradient_accumulation_steps` must divide `batch_size`, but got "
                f"(batch_size={self.batch_size}, gradient_accumulation_steps={self.gradient_accumulation_steps})"
            )
        return self


class TrialBudget(_Model):
    n_trials: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0, description="Seconds.")
    max_cost: float | None = Field(
        default=None, gt=0, description="Stop once the study's summed proxy compute passes this (TFLOP)."
    )

    @model_validator(mode="after")
    def _some(self) -> TrialBudget:
        if self.n_trials is None and self.timeout is None and self.max_cost is None:
            raise ValueError("set at least one of `n_trials`, `timeout`, `max_cost`")
        return self


class SamplerConfig(_Model):
    name: Literal["tpe", "gp", "nsga2", "random", "qmc"] = "gp"
    n_startup_trials: int = Field(default=8, ge=0, description="Random trials before the model (tpe, gp).")
    initial_design: Literal["none", "informed"] = Field(
        default="informed",
        description="`informed`: start a new study with a designed set of recipes (see SearchSpace.informed_design).",
    )


class GatesConfig(_Model):
    """Release gates. Each is an Optuna constraint (`trial.set_constraint`, measured - bound <= 0
    is feasible): infeasible trials stay in the study but are never selected, and
    constraint-aware samplers (TPE, GP, NSGA-II) steer away from them."""

    max_forgetting: float | None = Field(default=0.05, description="Aggregate (weighted) forgetting.")
    max_forgetting_per_suite: dict[str, float] = Field(
        default_factory=dict, description="Retention suite name -> largest allowed drop."
    )
    min_gain: float | None = Field(default=None, description="Smallest acceptable new-task gain.")
    max_cost: float | None = Field(default=None, gt=0, description="Projected full-update TFLOP per recipe.")


SELECTION_POLICIES = ("gain-within-gates", "knee", "utility")


class SelectionConfig(_Model):
    """How the recipe to apply is picked from the feasible Pareto front.

    * `gain-within-gates`: the highest gain (ties: lower cost).
    * `knee`: the front's knee: the point farthest below the line (plane) through the extremes,
      after scaling each objective to [0, 1] over the front.
    * `utility`: the highest `sum_o weights[o] * value_o`, each objective scaled to [0, 1] over
      the front and oriented so that higher is better.
    """

    policy: Literal["gain-within-gates", "knee", "utility"] = "gain-within-gates"
    weights: dict[str, float] = Field(
        default_factory=lambda: {"gain": 1.0, "forgetting": 1.0, "cost": 0.2},
        description="Objective weights of the `utility` policy.",
    )
    reruns: int = Field(default=0, ge=0, le=20, description="Extra seeds per top candidate before selecting.")
    top_k: int = Field(default=3, ge=1, description="Candidates re-run when `reruns > 0`.")

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"unknown objective(s) {unknown}; known: {sorted(OBJECTIVES)}")
        if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError(f"weights must be >= 0 with at least one > 0, but got {v}")
        return v


class EarlyStoppingConfig(_Model):
    """Rung-based early stopping across several objectives (successive halving in the spirit of
    MOASHA): at each rung the trial is scored and stopped if at least `min_dominating` trials
    that reached the same rung dominate it (better or equal on every objective, better on one)."""

    enabled: bool = False
    rungs: list[float] = Field(default_factory=lambda: [0.25, 0.5], description="Fractions of the proxy steps.")
    min_dominating: int = Field(default=2, ge=1)
    min_trials_at_rung: int = Field(default=4, ge=1, description="No stopping before this many peers reached the rung.")

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < r < 1 for r in v) or sorted(set(v)) != v:
            raise ValueError(f"must be increasing fractions strictly between 0 and 1, but got {v}")
        return v


class WarmStartConfig(_Model):
    """Seed a new study from earlier cycles in the same storage (see `recipe_opt.study._warm`)."""

    studies: list[str] = Field(
        default_factory=list,
        description="`[auto]` (the cycle that produced the base version), study names, or empty (cold start).",
    )
    max_recipes: int = Field(default=8, ge=1, le=64, description="Recipes enqueued: the selected one, then Pareto.")
    priors: bool = Field(default=False, description="Also add their complete trials as prior observations.")

    @field_validator("studies")
    @classmethod
    def _studies(cls, v: list[str]) -> list[str]:
        if "auto" in v and len(v) > 1:
            raise ValueError(f"`auto` stands alone, but got {v}")
        return v


class ApplyConfig(_Model):
    """`recipe-opt apply`: the selected recipe trained at full fidelity, registered as a new version.

    Full fidelity means every step of the recipe's budget (the proxy runs `proxy.fraction` of
    them) at the recipe's batch size, and every eval item (no `evaluation.limit`).
    """

    version: str | None = Field(
        default=None, description="Name of the new version; default: the base's trailing number + 1 (v0 -> v1)."
    )
    weights_dir: str | None = Field(
        default=None, description="Where `<version>/` is written; default: the directory holding `base_model`."
    )
    tier: Literal["foundation", "industrial", "application"] | None = Field(
        default=None, description="Tier of the new version; default: the parent's."
    )

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError("must be 1-100 characters of letters, digits, '.', '_' or '-'")
        return v


class WorkersConfig(_Model):
    """How workers sharing one study (`recipe-opt worker`, `search --workers N`) keep it honest.

    Heartbeats are on for server databases (PostgreSQL, MySQL): each running trial's worker stamps
    it every `heartbeat_interval` s; a trial silent for `grace_period` s (its worker was killed, its
    machine lost) is failed by the next worker that looks and re-queued with the same recipe, at
    most `max_retry` times. The grace period must outlast a stalled storage round-trip, not a trial:
    trials of any length keep stamping while they run.
    """

    heartbeat_interval: int = Field(default=10, ge=1, description="Seconds between a running trial's heartbeats.")
    grace_period: int = Field(
        default=60, ge=2, description="Seconds without a heartbeat after which a trial is failed and retried."
    )
    max_retry: int = Field(default=2, ge=0, description="Times one recipe is retried after its worker was lost.")
    max_consecutive_failures: int = Field(
        default=5,
        ge=1,
        description="A worker stops after this many of its own trials fail in a row (a broken setup, not bad luck).",
    )

    @model_validator(mode="after")
    def _grace(self) -> WorkersConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                "`grace_period > heartbeat_interval` must hold, but got "
                f"(grace_period={self.grace_period}, heartbeat_interval={self.heartbeat_interval})"
            )
        return self


class StudyConfig(_Model):
    name: str = Field(description="Study name (letters, digits, . _ -).")
    family: str = Field(default="demo", description="Model family in the lineage store.")
    base_version: str = Field(default="v0", description="Lineage name of the base model version.")
    base_model: str = Field(
        description="The model being updated: an HF causal-LM checkpoint directory, a Hugging Face hub id "
        "(org/name, fetched when online), or `lineage` / `lineage:VERSION` (the weights the lineage "
        "store records for base_version, or for VERSION)."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Let transformers run Python code shipped with the checkpoint (custom architectures). "
        "Off unless you trust the checkpoint's source.",
    )
    data_root: str
    sources: SourcesConfig
    search_space: str
    evaluation: EvaluationConfig
    objectives: list[Objective] = Field(default_factory=lambda: list(_ALL_OBJECTIVES), min_length=2)
    proxy: ProxyConfig
    trials: TrialBudget
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    warm_start: WarmStartConfig = Field(default_factory=WarmStartConfig)
    apply: ApplyConfig = Field(default_factory=ApplyConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    seed: int = 0
    storage: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<family>.db beside this file, shared by the family's cycles.",
    )
    output_dir: str | None = Field(default=None, description="Default: ../reports/<name>.")

    # Set by the loader, not by users.
    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("name", "family", "base_version")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-100 characters of letters, digits, '.', '_' or '-'")
        return v

    @model_validator(mode="after")
    def _gate_suites(self) -> StudyConfig:
        suites = [s.name for s in self.evaluation.retention]
        unknown = sorted(set(self.gates.max_forgetting_per_suite) - set(suites))
        if unknown:
            raise ValueError(f"gates.max_forgetting_per_suite: unknown retention suite(s) {unknown}; known: {suites}")
        return self

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
    def base_model_kind(self) -> Literal["dir", "lineage", "hub"]:
        """How `base_model` names the model: a directory, a lineage reference, or a hub id (a
        name of the form org/name that is not an existing directory)."""
        if self.base_model.startswith("lineage:") or (
            self.base_model == "lineage" and not self.base_model_path.exists()
        ):
            return "lineage"
        if self.base_model_path.exists() or not _HUB_ID.match(self.base_model):
            return "dir"
        return "hub"

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
        # One database per model family: its studies and its lineage live together, so the next
        # cycle's study finds the last one's selection and Pareto set to warm-start from.
        return f"sqlite:///{self.resolve(self.family + '.db')}"

    @property
    def storage_display(self) -> str:
        """`storage_url` with any password replaced by ***: for messages, logs and records."""
        return masked_url(self.storage_url)

    @property
    def apply_version(self) -> str:
        """Name of the version `apply` registers: configured, or the base's number + 1."""
        if self.apply.version:
            return self.apply.version
        m = re.match(r"^(.*?)(\d+)$", self.base_version)
        return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{self.base_version}-1"

    @property
    def apply_weights_root(self) -> Path:
        """Where `apply` writes `<version>/`: `apply.weights_dir`, or beside the base model."""
        return self.resolve(self.apply.weights_dir) if self.apply.weights_dir else self.base_model_path.parent

    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [OBJECTIVES[o] for o in self.objectives]

    def source_path(self, src: SourceConfig) -> Path | None:
        """The source's file, resolved against data_root; None for a `datasets` source."""
        if src.path is None:
            return None
        p = Path(src.path)
        return p if p.is_absolute() else (self.data_root_path / p).resolve()


def masked_url(url: str) -> str:
    """A database URL with its password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable as a URL: mask what looks like `user:password@`
        return re.sub(r"^((?:[^:/@]*://)?[^/:@]*:)[^@]*@", r"\1***@", url)


def _path_problems(cfg: StudyConfig, source: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    checks: list[tuple[str, Path, str]] = [
        # A lineage reference or hub id is resolved (store lookup, download) when the study runs.
        *([("base_model", cfg.base_model_path, "dir")] if cfg.base_model_kind == "dir" else []),
        ("data_root", cfg.data_root_path, "dir"),
        ("search_space", cfg.search_space_path, "file"),
        ("evaluation.tasks_dir", cfg.tasks_dir_path, "dir"),
    ]
    for group in ("new", "replay"):
        for name, src in getattr(cfg.sources, group).items():
            file = cfg.source_path(src)
            # Below a missing data_root every file is missing too: that is one problem, not one per file.
            if file is not None and (Path(str(src.path)).is_absolute() or cfg.data_root_path.is_dir()):
                checks.append((f"sources.{group}.{name}.path", file, "file"))
    for field, path, kind in checks:
        ok = path.is_dir() if kind == "dir" else path.is_file()
        if not ok:
            what = "directory" if kind == "dir" else "file"
            hint = ""
            if field == "data_root":
                hint = " (run `recipe-opt demo init` first?)"
            elif field == "base_model":  # v0 comes from `demo init`, later versions from `apply`
                hint = f" (run `recipe-opt demo init`, or `apply` of the cycle producing {cfg.base_version}?)"
            problems.append(ConfigProblem(source, field, f"{what} not found: {path}{hint}"))
    storage = _storage_problem(cfg.storage_url)
    if storage:
        problems.append(ConfigProblem(source, "storage", storage))
    return problems


def _storage_problem(url: str) -> str | None:
    """What is wrong with a storage URL that can be told without connecting: its form, its
    dialect, its driver, a SQLite file's directory. None if nothing is."""
    from sqlalchemy.engine import make_url

    shown = masked_url(url)
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        return f"not a database URL (dialect+driver://user:password@host:port/database), but got {shown!r}"
    try:
        parsed = make_url(url)
    except Exception as exc:  # a port that is not a number, ...
        reason = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        return f"not a valid database URL ({reason}), but got {shown!r}"
    try:
        dialect = parsed.get_dialect()
    except Exception:  # sqlalchemy.exc.NoSuchModuleError: no such dialect
        return (
            f"unknown database dialect {parsed.drivername!r} (SQLAlchemy's: sqlite, postgresql, mysql, ...), "
            f"but got {shown!r}"
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"the database driver for {parsed.drivername!r} is not installed ({exc}); got {shown!r}"
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        parent = Path(parsed.database).parent
        if not parent.is_dir():
            return f"directory not found: {parent} (for the SQLite database {parsed.database})"
    return None


def _scrub(text: str, url: str) -> str:
    """`text` without the URL's password, should the text quote the URL."""
    m = re.search(r"^(?:[^:/@]*://)?[^/:@]*:([^@]*)@", url)
    return text.replace(m.group(1), "***") if m and m.group(1) else text


def load_study_config(path: str | Path, *, check_paths: bool = True, storage: str | None = None) -> StudyConfig:
    """Load and validate a study YAML; raises `ConfigError` with every problem found.

    `storage` (the CLI's `--storage` / `RECIPE_OPT_STORAGE`) replaces the file's `storage:` key and
    is checked as that key would be.
    """
    source = str(path)
    raw: dict[str, Any] = load_yaml_mapping(path)
    if storage is not None:
        raw["storage"] = storage
    cfg = validate_model(StudyConfig, raw, source)
    cfg = cfg.model_copy(update={"config_path": Path(path).resolve()})
    if check_paths:
        problems = _path_problems(cfg, source)
        if storage is not None:  # the URL came from the command line (or $RECIPE_OPT_STORAGE): name that
            problems = [ConfigProblem("--storage", "", p.message) if p.field == "storage" else p for p in problems]
        if problems:
            raise ConfigError(problems)
    return cfg
