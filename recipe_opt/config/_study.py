"""Study config: what to update, with which data, scored how, searched how long, stored where.

Relative paths in a study file are resolved against the file's own directory, so a study runs
the same from any working directory. The default storage is a SQLite file beside the config.
The sections live in `_sources` and `_sections`, the database URL type in `_storage`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from recipe_opt._yaml import load_yaml_mapping, validate_model
from recipe_opt.config._sections import (
    NAME,
    ApplyConfig,
    EarlyStoppingConfig,
    EvaluationConfig,
    GatesConfig,
    MultiFidelityConfig,
    NoiseConfig,
    PrescreenConfig,
    ProxyConfig,
    SamplerConfig,
    SelectionConfig,
    TrialBudget,
    WarmStartConfig,
    WorkersConfig,
)
from recipe_opt.config._sources import SourceConfig, SourcesConfig
from recipe_opt.config._storage import StorageURL
from recipe_opt.exceptions import ConfigError, ConfigProblem
from recipe_opt.registry import BASELINES, CURRENT, OBJECTIVES, Direction

__all__ = ["StudyConfig", "load_study_config", "storage_option"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    objectives: list[Annotated[str, AfterValidator(OBJECTIVES.check)]] = Field(
        default_factory=lambda: list(OBJECTIVES.names()),
        min_length=2,
        description=f"What the search optimises, any of {OBJECTIVES.text()}; `gain` is required.",
    )
    proxy: ProxyConfig
    trials: TrialBudget
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    multi_fidelity: MultiFidelityConfig = Field(default_factory=MultiFidelityConfig)
    prescreen: PrescreenConfig = Field(default_factory=PrescreenConfig)
    warm_start: WarmStartConfig = Field(default_factory=WarmStartConfig)
    apply: ApplyConfig = Field(default_factory=ApplyConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    seed: int = 0
    storage: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<family>.db beside this file, shared by the family's cycles.",
    )
    output_dir: str | None = Field(default=None, description="Default: ../reports/<name>.")
    baselines: list[str] = Field(
        default_factory=list,
        description=(
            f"Recipes `apply` trains beside the pick at full fidelity, shown against it on every gate: "
            f"`{CURRENT}` (the recipe that made the base version), {BASELINES.text()} (their LoRA defaults on "
            "the pick's budget and mixture), or a recipe file (relative to this file)."
        ),
    )

    # Set by the loader, not by users.
    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("name", "family", "base_version")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("must be 1-100 characters of letters, digits, '.', '_' or '-'")
        return v

    @property
    def initial_design(self) -> str:
        """`sampler.initial_design` with `auto` resolved: `mixed`, or `informed` with a budget.

        Each is the arm that won bench/search_vs_oracle.py (README: "Samplers, exploration and
        warm start against the oracle"): without a budget the mixed design picked better in 4
        of 5 seeds and had the larger full-fidelity front after 20 trials in all 5; with a 0.25x
        budget its picks passed the gates in full in 3 of 5 seeds, the informed design's in 4.
        """
        kind = self.sampler.initial_design
        if kind == "auto":
            return "informed" if self.trials.budget is not None else "mixed"
        return kind

    @model_validator(mode="after")
    def _prescreen_alone(self) -> StudyConfig:
        if self.prescreen.enabled and self.trials.budget is not None:
            # A budget's plan is made before anything trains and does not count the probes yet.
            raise ValueError(
                "prescreen.enabled: cannot be combined with trials.budget yet (the plan does not count the probes)"
            )
        return self

    @model_validator(mode="after")
    def _gate_suites(self) -> StudyConfig:
        suites = [s.name for s in self.evaluation.retention]
        unknown = sorted(set(self.gates.max_forgetting_per_suite) - set(suites))
        if unknown:
            raise ValueError(f"gates.max_forgetting_per_suite: unknown retention suite(s) {unknown}; known: {suites}")
        return self

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, v: list[str]) -> list[str]:
        for name in v:
            if name != CURRENT and name not in BASELINES and not name.endswith((".yaml", ".yml", ".json")):
                names = [CURRENT, *BASELINES.names()]
                raise ValueError(f"{BASELINES.unknown(name)} (or `{CURRENT}`, or a recipe file: {names}, *.yaml)")
        if len(set(v)) != len(v):
            raise ValueError(f"must not repeat, but got {v}")
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
    def database(self) -> StorageURL:
        """The study's database: `storage`, a relative SQLite path taken from this file's folder."""
        if self.storage:
            return StorageURL(self.storage).resolved(self.base_dir)
        # One database per model family: its studies and its lineage live together, so the next
        # cycle's study finds the last one's selection and Pareto set to warm-start from.
        return StorageURL(f"sqlite:///{self.resolve(self.family + '.db')}")

    @property
    def storage_url(self) -> str:
        return self.database.url

    @property
    def storage_display(self) -> str:
        """`storage_url` with any password replaced by ***: for messages, logs and records."""
        return self.database.display

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

    def directions(self) -> list[Direction]:
        return [OBJECTIVES[o].direction for o in self.objectives]

    def source_path(self, src: SourceConfig) -> Path | None:
        """The source's file, resolved against data_root; None for a `datasets` source."""
        if src.path is None:
            return None
        p = Path(src.path)
        return p if p.is_absolute() else (self.data_root_path / p).resolve()


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
    for i, name in enumerate(cfg.baselines):
        if name.endswith((".yaml", ".yml", ".json")) and not cfg.resolve(name).is_file():
            problems.append(ConfigProblem(source, f"baselines[{i}]", f"file not found: {cfg.resolve(name)}"))
    storage = cfg.database.problem()
    if storage:
        problems.append(ConfigProblem(source, "storage", storage))
    return problems


def load_study_config(path: str | Path, *, check_paths: bool = True, storage: str | None = None) -> StudyConfig:
    """Load and validate a study YAML; raises `ConfigError` with every problem found.

    `storage` (the CLI's `--storage` / `RECIPE_OPT_STORAGE`) replaces the file's `storage:` key and
    is checked as that key would be.
    """
    source = str(path)
    raw: dict[str, Any] = load_yaml_mapping(path)
    if storage is not None:
        # A command-line path is the shell's: relative to the current directory (the file's own
        # `storage:` stays relative to the file's folder, like every path in it).
        raw["storage"] = StorageURL(storage).resolved(Path.cwd()).url
    cfg = validate_model(StudyConfig, raw, source)
    cfg = cfg.model_copy(update={"config_path": Path(path).resolve()})
    if check_paths:
        problems = _path_problems(cfg, source)
        if storage is not None:  # the URL came from the command line (or $RECIPE_OPT_STORAGE): name that
            problems = [ConfigProblem("--storage", "", p.message) if p.field == "storage" else p for p in problems]
        if problems:
            raise ConfigError(problems)
    return cfg


def storage_option(value: str | None) -> StorageURL:
    """The database a lineage command's `--storage` names: a URL, or a study config YAML whose
    storage to use. Problems are one line naming `--storage`."""
    if not value:
        raise ConfigError.single("--storage", "", "no lineage store given: pass a database URL or a study config YAML")
    if value.endswith((".yaml", ".yml")):
        return load_study_config(value, check_paths=False).database
    if "://" not in value:
        raise ConfigError.single("--storage", "", f"not a database URL or a study YAML: {StorageURL(value).display!r}")
    return StorageURL(value)
