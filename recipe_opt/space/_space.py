"""Search space: YAML -> validated parameter specs -> a `Recipe` per trial.

The space knows nothing of Optuna's study machinery: `SearchSpace.sample` takes any object with
Optuna's `suggest_float / suggest_int / suggest_categorical` methods (an `optuna.Trial`, or a
`FixedTrial` when replaying a recipe), so it can be tested and reused without a study.

Mixture weights live on a simplex. They are sampled by stick-breaking: source i < k takes a share
v_i ~ Beta(1, k - i) of what is left, drawn through its inverse CDF from a uniform u_i:
v_i = 1 - (1 - u_i) ** (1 / (k - i)). With u_i uniform this gives the uniform (Dirichlet(1..1))
distribution on the simplex from k - 1 parameters, and the map is one-to-one, so a recipe can be
turned back into parameters (warm starts, enqueued designs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from recipe_opt._yaml import load_yaml_mapping, validate_fields
from recipe_opt.exceptions import ConfigError, ConfigProblem
from recipe_opt.recipe import Mixture, Recipe
from recipe_opt.space._file import FILE_ORDER, SpaceFile, normalise_scalar_shorthand, semantic_problems
from recipe_opt.space._params import LISTED, PARAM, PARAMS, Param, build_recipe
from recipe_opt.space._specs import (
    CategoricalSpec,
    FixedMixtureSpec,
    FixedSpec,
    FloatSpec,
    IntSpec,
    Scalar,
    SimplexSpec,
    clip,
    pick,
    quantile,
)

__all__ = ["SearchSpace", "SuggestsParams", "load_search_space"]


class SuggestsParams(Protocol):
    """What `SearchSpace.sample` needs from a trial (satisfied by `optuna.Trial`)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space bound to the study's new-data sources."""

    spec: SpaceFile
    sources: tuple[str, ...]
    source_file: str = "<search space>"

    def with_target_sets(self, sets: Mapping[str, Sequence[str]]) -> SearchSpace:
        """The same space with its target-module sets replaced (resolved against a model)."""
        spec = self.spec.model_copy(update={"target_module_sets": {k: list(v) for k, v in sets.items()}})
        return replace(self, spec=spec)

    # ---- sampling -------------------------------------------------------------------------
    def sample(self, trial: SuggestsParams, *, seed: int = 0) -> Recipe:
        """Draw one recipe from `trial` (an `optuna.Trial` or anything with its suggest API)."""
        # The mixture's `mix.<source>` first, then the table's parameters in its order: the
        # recipes a seed gives depend on the order of the suggest calls.
        mixture = self._sample_mixture(trial)
        sets = self.spec.target_module_sets
        values = {p.name: p.recipe_value(self._draw(trial, p.name, self._spec_of(p)), sets) for p in PARAMS}
        return build_recipe(mixture, values, seed=seed)

    def _spec_of(self, p: Param) -> Any:
        """The file's spec of parameter `p` (a FloatSpec, IntSpec, CategoricalSpec or FixedSpec)."""
        return getattr(self.spec, p.name)

    @staticmethod
    def _draw(trial: SuggestsParams, name: str, spec: Any) -> Scalar:
        if isinstance(spec, FixedSpec):
            return spec.fixed
        if isinstance(spec, FloatSpec):
            return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
        if isinstance(spec, IntSpec):
            return trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
        assert isinstance(spec, CategoricalSpec)
        return trial.suggest_categorical(name, spec.choices)  # type: ignore[no-any-return]

    def _mixture_sources(self) -> tuple[str, ...]:
        m = self.spec.mixture
        if isinstance(m, SimplexSpec) and m.sources:
            return tuple(m.sources)
        return self.sources

    def _sample_mixture(self, trial: SuggestsParams) -> Mixture:
        m = self.spec.mixture
        if isinstance(m, FixedMixtureSpec):
            return Mixture.from_mapping(m.fixed)
        names = self._mixture_sources()
        k = len(names)
        weights: dict[str, float] = {}
        remaining = 1.0
        for i, name in enumerate(names[:-1]):
            u = trial.suggest_float(f"mix.{name}", 0.0, 1.0)
            v = 1.0 - (1.0 - u) ** (1.0 / (k - 1 - i))
            weights[name] = remaining * v
            remaining -= weights[name]
        weights[names[-1]] = max(remaining, 0.0)
        total = sum(weights.values())
        return Mixture.from_mapping({n: w / total for n, w in weights.items()})

    # ---- the inverse: recipe -> parameters --------------------------------------------------
    def params_for(self, recipe: Recipe) -> dict[str, Scalar]:
        """Optuna parameters that `sample` maps to `recipe` (for enqueueing known recipes).

        Raises `ValueError` naming the parameter when the recipe lies outside the space.
        """
        f = self.spec
        params: dict[str, Scalar] = {}
        if isinstance(f.mixture, SimplexSpec):
            params.update(self.params_for_mixture(recipe))
        values = self._recipe_values(recipe)
        for p in FILE_ORDER:
            if p.names_set and values[p.name] is None:
                raise ValueError(f"`{p.name}` {list(p.get(recipe))} is none of the space's sets")
        for p in FILE_ORDER:
            name, value, spec = p.name, values[p.name], self._spec_of(p)
            if isinstance(spec, FixedSpec):
                if spec.fixed != value:
                    raise ValueError(f"`{name}` is fixed at {spec.fixed!r}, but got {value!r}")
                continue
            if isinstance(spec, CategoricalSpec):
                if value not in spec.choices:
                    raise ValueError(f"`{name}` must be one of {spec.choices}, but got {value!r}")
            elif not (spec.low <= value <= spec.high):
                raise ValueError(f"`{spec.low} <= {name} <= {spec.high}` must hold, but got {value!r}")
            params[name] = value
        return params

    def _recipe_values(self, recipe: Recipe) -> dict[str, Any]:
        """The recipe's value of every scalar parameter (a set's name, or None, for `target_modules`)."""
        sets = self.spec.target_module_sets
        return {p.name: p.value_in(recipe, sets) for p in FILE_ORDER}

    def transfer(self, recipe: Recipe) -> tuple[dict[str, Scalar], list[str]]:
        """Parameters of this space closest to a recipe from another cycle, and what changed.

        For warm starts: a value outside its range is clipped to the range (and onto its step
        grid); a value this space does not offer (a categorical choice, a different pinned value,
        a target-module list that is none of the sets) is dropped, so the sampler draws it; a
        mixture over other sources becomes equal weights over this space's sources. Each change is
        one line in the returned notes.
        """
        f = self.spec
        params: dict[str, Scalar] = {}
        notes: list[str] = []
        if isinstance(f.mixture, SimplexSpec):
            try:
                params.update(self.params_for_mixture(recipe))
            except ValueError as exc:
                # Another cycle's sources: start from equal weights, as the informed design does,
                # so the carried-over LR, replay and budget are not paired with a random mixture.
                params.update(self._equal_mixture())
                notes.append(f"mixture set to equal weights: {exc}")
        values = self._recipe_values(recipe)
        for p in FILE_ORDER:
            name, value, spec = p.name, values[p.name], self._spec_of(p)
            if value is None:
                notes.append(f"{name} dropped: {list(p.get(recipe))} is none of the sets")
            elif isinstance(spec, FixedSpec):
                if spec.fixed != value:
                    notes.append(f"{name} is fixed at {spec.fixed!r} here (the recipe had {value!r})")
            elif isinstance(spec, CategoricalSpec):
                if value in spec.choices:
                    params[name] = value
                else:
                    notes.append(f"{name} dropped: {value!r} is not one of {spec.choices}")
            else:
                clipped = clip(spec, value)
                if clipped != value:
                    notes.append(f"{name} clipped from {value!r} to {clipped!r} (range {spec.low}..{spec.high})")
                params[name] = clipped
        return params, notes

    def _equal_mixture(self) -> dict[str, Scalar]:
        """Stick-breaking parameters of equal weights over the space's sources."""
        names = self._mixture_sources()
        k = len(names)
        # Source i takes 1/(k - i) of what is left, drawn as u = 1 - (1 - v)^(k - 1 - i).
        return {f"mix.{name}": 1.0 - (1.0 - 1.0 / (k - i)) ** (k - 1 - i) for i, name in enumerate(names[:-1])}

    def params_for_mixture(self, recipe: Recipe) -> dict[str, Scalar]:
        """The stick-breaking parameters `mix.<source>` that give the recipe's mixture."""
        names = self._mixture_sources()
        w = recipe.mixture.as_dict()
        if set(w) != set(names):
            raise ValueError(f"recipe mixes {sorted(w)}, but the space mixes {sorted(names)}")
        params: dict[str, Scalar] = {}
        remaining = 1.0
        k = len(names)
        for i, name in enumerate(names[:-1]):
            v = 0.0 if remaining <= 1e-12 else min(max(w[name] / remaining, 0.0), 1.0)
            params[f"mix.{name}"] = 1.0 - (1.0 - v) ** (k - 1 - i)
            remaining -= w[name]
        return params

    def informed_design(self, *, spread_choices: bool = False) -> list[dict[str, Scalar]]:
        """A small designed start for the sampler, informed by what is known of updates.

        Forgetting is driven mostly by replay and LR, cost by the update's length, gain by all
        three (demo-world notes; arXiv 2405.09673, 2403.08763). So instead of random start-up
        trials the design spans the cost axis (steps at 15/50/85% of their range) and the
        forgetting axis (replay at its bounds and middle) at a central LoRA LR, and probes LR
        up and down once; the rest is fixed at common defaults (each parameter's `prefer` in the
        table: rank 16 or 8, alpha = 2r, cosine, all linear layers, 5% warmup; and an equal
        mixture) where the space allows. Each point is a partial parameter dict: parameters it
        leaves out are drawn by the sampler.

        `spread_choices` (`sampler.initial_design: mixed`) keeps the centre point and the axes
        but gives every point after the centre a different choice of each unpinned categorical
        (schedule, alpha ratio, target modules, ...), cycling through its choices with a shift
        per parameter, so every choice is tried at least twice in 8 points. The plain design
        pins them all at their preferred values, and a GP fitted to it has no evidence that any
        other choice exists: on the demo's 24-trial search every trial but two kept cosine,
        alpha = 2r and all linear layers, while the cycle-1 oracle's best in-gate recipes use
        linear schedules and alpha = 4r.
        """
        # (steps quantile, replay quantile, LR quantile on the log scale)
        grid = [
            (0.5, 0.5, 0.6),
            (0.15, 0.5, 0.6),
            (0.85, 0.5, 0.6),
            (0.5, 0.0, 0.6),
            (0.5, 1.0, 0.6),
            (0.5, 0.5, 0.8),
            (0.5, 0.5, 0.4),
            (0.15, 0.0, 0.8),
        ]
        f = self.spec
        common: dict[str, Scalar] = {}
        if isinstance(f.mixture, SimplexSpec):
            common.update(self._equal_mixture())
        for p in PARAMS:
            value = pick(self._spec_of(p), p.prefer) if p.prefer else None
            if value is not None:
                common[p.name] = value
        spread: list[tuple[str, list[Scalar]]] = []
        if spread_choices:
            for p in PARAMS:
                spec = self._spec_of(p)
                if isinstance(spec, CategoricalSpec) and len(spec.choices) > 1:
                    first = common.get(p.name, spec.choices[0])
                    spread.append((p.name, [first, *(c for c in spec.choices if c != first)]))
        points = []
        for i, (steps_q, replay_q, lr_q) in enumerate(grid):
            point = dict(common)
            # Point i > 0 takes choice (i + j * (i // m)) mod m of the j-th categorical (m
            # choices): the centre keeps the preferred values, and the shift by i // m keeps two
            # categoricals with equally many choices from moving in lockstep (schedule x alpha:
            # 7 different pairs in the 7 points after the centre).
            for j, (name, order) in enumerate(spread):
                m = len(order)
                point[name] = order[(i + j * (i // m)) % m]
            for name, q in (("steps", steps_q), ("replay_ratio", replay_q), ("peak_lr", lr_q)):
                value = quantile(getattr(f, name), q)
                if value is not None:
                    point[name] = value
            if point not in points:
                points.append(point)
        return points

    def extremes(self, name: str) -> tuple[Scalar, ...]:
        """The values parameter `name` can take at its ends: a range's lowest and highest (on its
        step), a categorical's choices, a pinned value alone. For projections of cost."""
        spec = self._spec_of(PARAM[name])
        if isinstance(spec, FixedSpec):
            return (spec.fixed,)
        if isinstance(spec, CategoricalSpec):
            return tuple(spec.choices)
        if isinstance(spec, IntSpec):
            return (spec.low, spec.low + (spec.high - spec.low) // spec.step * spec.step)
        return (spec.low, spec.high)

    def describe(self) -> list[tuple[str, str]]:
        """(parameter, human-readable domain) rows for `recipe-opt validate`."""
        rows: list[tuple[str, str]] = []
        m = self.spec.mixture
        if isinstance(m, FixedMixtureSpec):
            rows.append(("mixture", f"fixed {m.fixed}"))
        else:
            rows.append(("mixture", f"simplex over {', '.join(self._mixture_sources())}"))
        for p in LISTED:
            name, spec = p.name, self._spec_of(p)
            if isinstance(spec, FixedSpec):
                rows.append((name, f"fixed {spec.fixed!r}"))
            elif isinstance(spec, CategoricalSpec):
                rows.append((name, f"one of {spec.choices}"))
            else:
                scale = "log" if spec.log else "linear"
                rows.append((name, f"{spec.type} [{spec.low:g}, {spec.high:g}] ({scale})"))
        return rows


def load_search_space(path: str | Path, sources: Sequence[str] | None) -> SearchSpace:
    """Load and validate a search-space YAML for a study whose new sources are `sources`.

    `sources=None` validates the file on its own (source names are checked only against a study).

    Raises `ConfigError` holding every problem found, each naming the file and the field.
    """
    source = str(path)
    raw = load_yaml_mapping(path)
    fields, problems = validate_fields(SpaceFile, normalise_scalar_shorthand(raw), source)
    problems += semantic_problems(source, fields)
    m = fields.get("mixture")
    if sources is None:
        own = m.sources if isinstance(m, SimplexSpec) and m.sources else list(getattr(m, "fixed", {}) or ["new"])
        sources = list(own)
    if isinstance(m, SimplexSpec) and m.sources is not None:
        unknown = [s for s in m.sources if s not in sources]
        if unknown:
            problems.append(
                ConfigProblem(
                    source,
                    "mixture.sources",
                    f"unknown source(s) {unknown}; the study's new sources are {list(sources)}",
                )
            )
        if len(set(m.sources)) != len(m.sources) or not m.sources:
            problems.append(ConfigProblem(source, "mixture.sources", "must list distinct sources"))
    if isinstance(m, FixedMixtureSpec):
        unknown = [s for s in m.fixed if s not in sources]
        if unknown:
            problems.append(
                ConfigProblem(
                    source,
                    "mixture.fixed",
                    f"unknown source(s) {unknown}; the study's new sources are {list(sources)}",
                )
            )
    if not sources:
        problems.append(ConfigProblem(source, "mixture", "the study declares no new-data sources"))
    if problems:
        raise ConfigError(problems)
    return SearchSpace(spec=SpaceFile(**fields), sources=tuple(sources), source_file=source)
