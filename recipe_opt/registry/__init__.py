"""Registries: every objective, sampler, selection policy and baseline recipe-opt knows, each named once.

The config floor validates names against them, the command line's help lists them, and the
study and the reports read directions, labels, factories and rules from them.
"""

from recipe_opt.registry._base import Registry
from recipe_opt.registry._baselines import BASELINES, CURRENT, Baseline, ModuleSets
from recipe_opt.registry._objectives import (
    OBJECTIVES,
    Direction,
    Objective,
    ObjectiveInputs,
    objective_values,
    values_of,
)
from recipe_opt.registry._policies import POLICIES, Policy
from recipe_opt.registry._samplers import SAMPLERS, SamplerSpec

__all__ = [
    "BASELINES",
    "CURRENT",
    "OBJECTIVES",
    "POLICIES",
    "SAMPLERS",
    "Baseline",
    "Direction",
    "ModuleSets",
    "Objective",
    "ObjectiveInputs",
    "Policy",
    "Registry",
    "SamplerSpec",
    "objective_values",
    "values_of",
]
