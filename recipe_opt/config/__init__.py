"""Study configs: validated YAML describing one update cycle's search."""

from recipe_opt.config._study import (
    OBJECTIVES,
    SELECTION_POLICIES,
    EarlyStoppingConfig,
    EvaluationConfig,
    GatesConfig,
    ProxyConfig,
    ReplayPoolConfig,
    SamplerConfig,
    SelectionConfig,
    SourceConfig,
    StudyConfig,
    SuiteConfig,
    TrialBudget,
    load_study_config,
    masked_url,
)

__all__ = [
    "OBJECTIVES",
    "SELECTION_POLICIES",
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
    "load_study_config",
    "masked_url",
]
