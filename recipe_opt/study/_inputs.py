"""A study's inputs as a command gives them: the config file, with the command line's overrides
(`--sampler`, `--early-stopping`, `--storage`), its search space, and its base model resolved to
a local directory. Problems are `ConfigError`s naming the file and field, or the option."""

from __future__ import annotations

from pathlib import Path

from recipe_opt.config import SamplerConfig, SearchBudget, StudyConfig, load_study_config
from recipe_opt.exceptions import ConfigError
from recipe_opt.registry import SAMPLERS
from recipe_opt.space import SearchSpace, load_search_space
from recipe_opt.study._base import resolve_base_model

__all__ = ["load_inputs"]


def load_inputs(
    config: str | Path,
    *,
    sampler: str | None = None,
    early_stopping: bool | None = None,
    storage: str | None = None,
    budget: str | None = None,
    migrate: bool = True,
) -> tuple[StudyConfig, SearchSpace]:
    """The study config (with overrides) and its search space, as loaded from the files.

    `migrate=False` (workers) reads a lineage reference without creating or migrating tables.
    The space's LoRA targets are resolved against the model by `StudyRunner`.
    """
    cfg = load_study_config(config, storage=storage)
    if sampler is not None:
        if sampler not in SAMPLERS:
            raise ConfigError.single("--sampler", "", SAMPLERS.unknown(sampler))
        try:
            SAMPLERS[sampler].check_installed()
        except ValueError as exc:
            raise ConfigError.single("--sampler", "", str(exc)) from None
        cfg = cfg.model_copy(
            update={"sampler": SamplerConfig(name=sampler, n_startup_trials=cfg.sampler.n_startup_trials)}
        )
    if early_stopping is not None:
        cfg = cfg.model_copy(
            update={"early_stopping": cfg.early_stopping.model_copy(update={"enabled": early_stopping})}
        )
    if budget is not None:
        try:
            SearchBudget.parse(budget)
        except ValueError as exc:
            raise ConfigError.single("--budget", "", str(exc)) from None
        cfg = cfg.model_copy(update={"trials": cfg.trials.model_copy(update={"budget": budget})})
    space = load_search_space(cfg.search_space_path, list(cfg.sources.new))
    if cfg.base_model_kind != "dir":  # a lineage reference or hub id: a local directory from here on
        cfg = resolve_base_model(cfg, migrate=migrate)
    return cfg, space
