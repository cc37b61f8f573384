"""Study configs: validated YAML describing one update cycle's search."""

from recipe_opt.config._sections import (
    ApplyConfig,
    EarlyStoppingConfig,
    EvaluationConfig,
    GatesConfig,
    MultiFidelityConfig,
    NoiseConfig,
    PrescreenConfig,
    ProxyConfig,
    SamplerConfig,
    SearchBudget,
    SelectionConfig,
    SuiteConfig,
    TrialBudget,
    WarmStartConfig,
    WorkersConfig,
    check_weights,
)
from recipe_opt.config._sources import DATA_FIELDS, DATA_FILE_SUFFIXES, ReplayPoolConfig, SourceConfig, SourcesConfig
from recipe_opt.config._storage import STORAGE_ENV, StorageURL, masked_url
from recipe_opt.config._study import StudyConfig, load_study_config, storage_option

__all__ = [
    "DATA_FIELDS",
    "DATA_FILE_SUFFIXES",
    "STORAGE_ENV",
    "ApplyConfig",
    "EarlyStoppingConfig",
    "EvaluationConfig",
    "GatesConfig",
    "MultiFidelityConfig",
    "NoiseConfig",
    "PrescreenConfig",
    "ProxyConfig",
    "ReplayPoolConfig",
    "SamplerConfig",
    "SearchBudget",
    "SelectionConfig",
    "SourceConfig",
    "SourcesConfig",
    "StorageURL",
    "StudyConfig",
    "SuiteConfig",
    "TrialBudget",
    "WarmStartConfig",
    "WorkersConfig",
    "check_weights",
    "load_study_config",
    "masked_url",
    "storage_option",
]
