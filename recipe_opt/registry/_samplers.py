"""The Optuna samplers a study can use, by name (`sampler.name`, `--sampler`).

Each entry builds its sampler seeded; optuna is imported only when one is built, so the config
floor can validate names without it. A sampler from an optional extra names the modules it needs
(`requires`); the config refuses it, with the install command, where they are missing.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recipe_opt.registry._base import Registry

__all__ = ["SAMPLERS", "SamplerSpec"]


def _installed(module: str) -> bool:
    if module in sys.modules:  # imported already (optuna_integration's lazy module has no __spec__)
        return True
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    help: str
    build: Callable[[int, int], Any]  # (seed, n_startup_trials) -> optuna.samplers.BaseSampler
    requires: tuple[str, ...] = field(default=())  # modules of an optional extra
    extra: str = ""  # the extra that installs them: pip install 'recipe-opt[<extra>]'

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [m for m in self.requires if not _installed(m)]

    def check_installed(self) -> None:
        """`ValueError` naming what to install where a required module is missing."""
        missing = self.missing()
        if missing:
            raise ValueError(
                f"sampler {self.name!r} needs {', '.join(missing)}, which is not installed: "
                f"pip install 'recipe-opt[{self.extra}]'"
            )

    def create(self, seed: int, n_startup_trials: int) -> Any:
        self.check_installed()
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


def _botorch(seed: int, n_startup: int) -> Any:
    import optuna
    from optuna_integration import BoTorchSampler
    from optuna_integration.botorch import qnehvi_candidates_func

    # qnehvi_candidates_func is qLogNEHVI (arXiv 2310.20708) on BoTorch >= 0.8: noise-aware
    # hypervolume improvement; the gates reach it as outcome constraints from `trial.set_constraint`.
    # The wrapper is experimental in optuna-integration: chosen knowingly in the config.
    def candidates(*args: Any) -> Any:  # the same function, without its warning on every trial
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return qnehvi_candidates_func(*args)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return BoTorchSampler(candidates_func=candidates, n_startup_trials=n_startup, seed=seed)


# The first entry is the default (bench/search_quality.py: GP after the informed design).
SAMPLERS: Registry[SamplerSpec] = Registry(
    "sampler",
    [
        SamplerSpec("gp", "Gaussian-process BO (Optuna's GPSampler; constraints and several objectives)", _gp),
        SamplerSpec("tpe", "multivariate TPE", _tpe),
        SamplerSpec("nsga2", "NSGA-II (its first population is random)", _nsga2),
        SamplerSpec("random", "independent uniform draws", _random),
        SamplerSpec("qmc", "scrambled Sobol points", _qmc),
        SamplerSpec(
            "botorch",
            "BoTorch qLogNEHVI with the gates as constraints (optional extra: recipe-opt[botorch])",
            _botorch,
            requires=("optuna_integration", "botorch"),
            extra="botorch",
        ),
    ],
)
