"""The Optuna study: trials of proxy fine-tunes, selection, and the records they leave."""

from recipe_opt.study._runner import (
    ATTR_BASE_EVAL,
    ATTR_FAILURE,
    ATTR_METRICS,
    ATTR_RECIPE,
    SearchReporter,
    StudyRunner,
    TrialSummary,
    create_sampler,
    data_manifest,
    file_sha256,
    open_study,
)
from recipe_opt.study._select import (
    SELECTION_RULE,
    SelectedRecipe,
    pareto_front,
    record_selection,
    select_recipe,
    trial_values,
)

__all__ = [
    "ATTR_BASE_EVAL",
    "ATTR_FAILURE",
    "ATTR_METRICS",
    "ATTR_RECIPE",
    "SELECTION_RULE",
    "SearchReporter",
    "SelectedRecipe",
    "StudyRunner",
    "TrialSummary",
    "create_sampler",
    "data_manifest",
    "file_sha256",
    "open_study",
    "pareto_front",
    "record_selection",
    "select_recipe",
    "trial_values",
]
