"""The Optuna samplers a study can use, by name (`sampler.name`, `--sampler`).

Each entry builds its sampler seeded; optuna is imported only when one is built, so the config
floor can validate names without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recipe_opt.registry._base import Registry

__all__ = ["SAMPLERS", "SamplerSpec"]


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    help: str
    build: Callable[[int, int], Any]  # (seed, n_startup_trials) -> optuna.samplers.BaseSampler

    def create(self, seed: int, n_startup_trials: int) -> Any:
        return self.build(seed, n_startup_trials)


def _gp(seed: int, n_startup: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup)


def _tpe(seed: int, n_startup: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True)


def _nsga2(seed: int, n_startup: int) -> Any:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


def _random(seed: int, n_startup: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _qmc(seed: int, n_startup: int) -> Any:
    import optuna

    with warnings.catch_warnings():  # "experimental since v3.0": chosen knowingly in the config
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)


# The first entry is the default (bench/search_quality.py: GP after the informed design).
SAMPLERS: Registry[SamplerSpec] = Registry(
    "sampler",
    [
        SamplerSpec("gp", "Gaussian-process BO (Optuna's GPSampler; constraints and several objectives)", _gp),
        SamplerSpec("tpe", "multivariate TPE", _tpe),
        SamplerSpec("nsga2", "NSGA-II (its first population is random)", _nsga2),
        SamplerSpec("random", "independent uniform draws", _random),
        SamplerSpec("qmc", "scrambled Sobol points", _qmc),
    ],
)
