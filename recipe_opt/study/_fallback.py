"""A warm start that checks itself (`warm_start.control`), and falls back to the cold design.

A parent cycle's recipes are a guess about the new cycle: new data, a new base. With
`warm_start.control: N`, the informed design's first recipes (N, or more where the warm recipes
leave the design's slots free, as they would fill them without the check) run beside the warm
start's recipes as a control. Once all of them have run, their best in-gate gain on *this* cycle
is compared: when the warm recipes' best is below the control's (or none of them passes the gates
and a control does), the warm start is judged to mislead. The rest of the informed design is then
queued (the cold start's design, where `sampler.initial_design` is `informed`) and the prior
observations, if any, are hidden from the sampler for the rest of the search (`WithoutPriors`);
they stay in the study, as before never selected. The decision and its figures are a study
attribute (`ATTR_WARM_CHECK`), shown by the search. A search run by `--workers` makes no check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from recipe_opt.study._attrs import is_prior
from recipe_opt.study._records import StudyRecord

__all__ = ["ROLE_CONTROL", "ROLE_WARM", "WarmCheck", "WithoutPriors", "decide_warm_check"]

ROLE_WARM = "warm"
ROLE_CONTROL = "control"


@dataclass(frozen=True)
class WarmCheck:
    """The measured check of a warm start against its control."""

    warm_best: float | None  # best in-gate gain among the warm-start recipes (None: none passes)
    control_best: float | None  # the same among the informed-design control recipes
    n_warm: int
    n_control: int
    fallback: bool

    def line(self) -> str:
        def fmt(x: float | None) -> str:
            return "none in the gates" if x is None else f"{x:+.3f}"

        verdict = (
            "falling back to the cold design (the rest of the informed design is queued, priors are hidden)"
            if self.fallback
            else "keeping the warm start"
        )
        return (
            f"warm-start check: best in-gate gain of the {self.n_warm} warm-start recipes {fmt(self.warm_best)}, "
            f"of the {self.n_control} control recipes {fmt(self.control_best)}: {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"decided": True, **asdict(self)}


def decide_warm_check(record: StudyRecord, role_of: dict[int, str]) -> WarmCheck:
    """Compare the warm-start recipes with the control (`role_of`: trial number -> role), each by
    its best gain among complete trials that pass the gates."""

    def best(role: str) -> tuple[float | None, int]:
        trials = [t for t in record.complete if role_of.get(t.number) == role]
        gains = [t.values["gain"] for t in trials if record.feasible(t)]
        return (max(gains) if gains else None), len(trials)

    warm, n_warm = best(ROLE_WARM)
    control, n_control = best(ROLE_CONTROL)
    fallback = control is not None and (warm is None or warm < control)
    return WarmCheck(warm, control, n_warm, n_control, fallback)


class _StudyWithoutPriors:
    """A read view of a study whose trial lists leave out prior observations (what a sampler reads)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[optuna.trial.TrialState] | None = None
    ) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states) if not is_prior(t)]

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Sequence[optuna.trial.TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[optuna.trial.FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return [t for t in trials if not is_prior(t)]

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.get_trials()

    @property
    def best_trials(self) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self._study.best_trials if not is_prior(t)]


class WithoutPriors(optuna.samplers.BaseSampler):
    """Wraps a sampler so that its model never sees the study's prior observations."""

    def __init__(self, base: optuna.samplers.BaseSampler) -> None:
        self.base = base

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        space: dict[str, optuna.distributions.BaseDistribution] = self.base.infer_relative_search_space(
            _StudyWithoutPriors(study),  # type: ignore[arg-type]  # a read view: what samplers call
            trial,
        )
        return space

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        out: dict[str, Any] = self.base.sample_relative(
            _StudyWithoutPriors(study),  # type: ignore[arg-type]
            trial,
            search_space,
        )
        return out

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self.base.sample_independent(
            _StudyWithoutPriors(study),  # type: ignore[arg-type]
            trial,
            param_name,
            param_distribution,
        )

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
