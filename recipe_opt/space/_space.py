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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from recipe_opt._yaml import load_yaml_mapping, validate_fields
from recipe_opt.exceptions import ConfigError, ConfigProblem
from recipe_opt.recipe import (
    SCHEDULE_SHAPES,
    Adapter,
    Budget,
    Mixture,
    Recipe,
    Replay,
    Schedule,
)

__all__ = ["SearchSpace", "SuggestsParams", "load_search_space"]

Scalar = bool | int | float | str


class SuggestsParams(Protocol):
    """What `SearchSpace.sample` needs from a trial (satisfied by `optuna.Trial`)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    help: str | None = Field(default=None, description="Free text shown by `recipe-opt validate`.")


class FloatSpec(_Spec):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _range(self) -> FloatSpec:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"bounds must be finite, but got (low={self.low}, high={self.high})")
        if self.low > self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs `low > 0`, but got (low={self.low})")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log: true` cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"`step > 0` must hold, but got (step={self.step})")
        return self


class IntSpec(_Spec):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _range(self) -> IntSpec:
        if self.low > self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs `low > 0`, but got (low={self.low})")
        if self.log and self.step != 1:
            raise ValueError("`step` and `log: true` cannot be combined")
        if self.step <= 0:
            raise ValueError(f"`step > 0` must hold, but got (step={self.step})")
        return self


class CategoricalSpec(_Spec):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, v: list[Scalar]) -> list[Scalar]:
        if len(set(map(repr, v))) != len(v):
            raise ValueError(f"choices must be unique, but got {v}")
        return v


class FixedSpec(_Spec):
    fixed: Scalar


def _spec_kind(value: Any) -> str | None:
    """Which spec a YAML mapping means: `{fixed: ...}`, or `{type: float|int|categorical, ...}`."""
    if isinstance(value, dict):
        if "fixed" in value:
            return "type=fixed"
        kind = value.get("type")
        return f"type={kind}" if isinstance(kind, str) else None
    if isinstance(value, FixedSpec | FixedMixtureSpec):
        return "type=fixed"
    kind = getattr(value, "type", None)
    return f"type={kind}" if kind else None


class SimplexSpec(_Spec):
    """Mixture weights over the study's new-data sources."""

    type: Literal["simplex"]
    sources: list[str] | None = Field(
        default=None, description="Sources to mix; default: every new source of the study."
    )


class FixedMixtureSpec(_Spec):
    fixed: dict[str, float]

    @field_validator("fixed")
    @classmethod
    def _simplex(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("a fixed mixture needs at least one source")
        if any(w < 0 for w in v.values()):
            raise ValueError(f"weights must be >= 0, but got {v}")
        total = sum(v.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, but got sum={total:g} for {v}")
        return v


_TAG_HELP = "a mapping with `fixed: VALUE` or `type:` one of float, int, categorical"

ParamSpec = Annotated[
    Annotated[FloatSpec, Tag("type=float")]
    | Annotated[IntSpec, Tag("type=int")]
    | Annotated[CategoricalSpec, Tag("type=categorical")]
    | Annotated[FixedSpec, Tag("type=fixed")],
    Discriminator(
        _spec_kind,
        custom_error_type="invalid_param_spec",
        custom_error_message=f"must be {_TAG_HELP}",
    ),
]

MixtureSpec = Annotated[
    Annotated[SimplexSpec, Tag("type=simplex")] | Annotated[FixedMixtureSpec, Tag("type=fixed")],
    Discriminator(
        _spec_kind,
        custom_error_type="invalid_mixture_spec",
        custom_error_message="must be `type: simplex` or `fixed: {SOURCE: WEIGHT, ...}`",
    ),
]


def _normalise_scalar_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    """`peak_lr: 1e-3` is shorthand for `peak_lr: {fixed: 1e-3}`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("target_module_sets", "mixture") or isinstance(value, dict):
            out[key] = value
        elif isinstance(value, bool | int | float | str):
            out[key] = {"fixed": value}
        else:
            out[key] = value
    return out


class SpaceFile(BaseModel):
    """Schema of a search-space YAML file. Every field may be a range, a choice or fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mixture: MixtureSpec = Field(
        default_factory=lambda: SimplexSpec(type="simplex"),
        description="Weights over the new-data sources (a simplex).",
    )
    replay_ratio: ParamSpec = Field(description="Share of each batch replayed.")
    peak_lr: ParamSpec = Field(description="Peak learning rate.")
    warmup_fraction: ParamSpec = FixedSpec(fixed=0.05)
    schedule: ParamSpec = FixedSpec(fixed="cosine")
    weight_decay: ParamSpec = FixedSpec(fixed=0.0)
    lora_rank: ParamSpec = Field(description="LoRA rank r.")
    lora_alpha_ratio: ParamSpec = FixedSpec(fixed=2.0)
    lora_dropout: ParamSpec = FixedSpec(fixed=0.0)
    target_modules: ParamSpec = FixedSpec(fixed="all_linear")
    target_module_sets: dict[str, list[str]] = Field(
        # Markers, resolved against the loaded model before the study starts (train/_targets.py):
        # on Llama-style models exactly q,k,v,o_proj and those plus gate,up,down_proj.
        default_factory=lambda: {"attention": ["@attention"], "all_linear": ["all-linear"]},
        description="Named sets of LoRA target modules that `target_modules` chooses between: module "
        "names, or the markers `all-linear` (every linear layer but the head) and `@attention` "
        "(the attention block's linear layers), resolved against the model.",
    )
    steps: ParamSpec = Field(description="Optimiser steps of the full update.")
    batch_size: ParamSpec = FixedSpec(fixed=32)


# (field, kind the value must have, inclusive bounds or allowed set)
_Kind = Literal["float", "int", "str"]
_FIELD_RULES: dict[str, tuple[_Kind, tuple[float, float] | None]] = {
    "replay_ratio": ("float", (0.0, 0.95)),
    "peak_lr": ("float", (1e-7, 1.0)),
    "warmup_fraction": ("float", (0.0, 0.9)),
    "weight_decay": ("float", (0.0, 1.0)),
    "lora_rank": ("int", (1, 4096)),
    "lora_alpha_ratio": ("float", (1e-3, 1e3)),
    "lora_dropout": ("float", (0.0, 0.9)),
    "steps": ("int", (1, 10**9)),
    "batch_size": ("int", (1, 10**6)),
    "schedule": ("str", None),
    "target_modules": ("str", None),
}


def _semantic_problems(source: str, f: Mapping[str, Any]) -> list[ConfigProblem]:
    """Checks pydantic cannot express: types and bounds per field, known schedule names, sets.

    `f` holds the fields that parsed; fields that did not are already reported and skipped here.
    """
    problems: list[ConfigProblem] = []

    def bad(field: str, message: str) -> None:
        problems.append(ConfigProblem(source, field, message))

    for name, (kind, bounds) in _FIELD_RULES.items():
        if name not in f:
            continue
        spec = f[name]
        values: list[Any]
        if isinstance(spec, FixedSpec):
            values = [spec.fixed]
        elif isinstance(spec, CategoricalSpec):
            values = list(spec.choices)
        else:
            if kind == "str":
                bad(name, f"must be categorical or fixed, but got type {spec.type!r}")
                continue
            if kind == "int" and isinstance(spec, FloatSpec):
                bad(name, "must be an integer range (`type: int`), but got `type: float`")
                continue
            values = [spec.low, spec.high]
        for v in values:
            if kind == "str":
                if not isinstance(v, str):
                    bad(name, f"must be a string, but got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int | float):
                bad(name, f"must be a number, but got {v!r}")
            elif kind == "int" and not float(v).is_integer():
                bad(name, f"must be an integer, but got {v!r}")
            elif bounds is not None and not (bounds[0] <= v <= bounds[1]):
                bad(name, f"must lie in [{bounds[0]:g}, {bounds[1]:g}], but got {v!r}")

    for v in _values(f.get("schedule")):
        if isinstance(v, str) and v not in SCHEDULE_SHAPES:
            bad("schedule", f"unknown schedule shape {v!r}; known: {', '.join(SCHEDULE_SHAPES)}")
    sets = f.get("target_module_sets", {})
    for v in _values(f.get("target_modules")):
        if isinstance(v, str) and v not in sets:
            bad(
                "target_modules",
                f"{v!r} is not a key of `target_module_sets` ({', '.join(sets)})",
            )
    for key, modules in sets.items():
        if not modules:
            bad(f"target_module_sets.{key}", "must list at least one module name")
    return problems


def _values(spec: Any) -> list[Any]:
    if isinstance(spec, FixedSpec):
        return [spec.fixed]
    if isinstance(spec, CategoricalSpec):
        return list(spec.choices)
    return []


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
        f = self.spec
        return Recipe(
            mixture=self._sample_mixture(trial),
            replay=Replay(float(self._draw(trial, "replay_ratio", f.replay_ratio))),
            schedule=Schedule(
                peak_lr=float(self._draw(trial, "peak_lr", f.peak_lr)),
                warmup_fraction=float(self._draw(trial, "warmup_fraction", f.warmup_fraction)),
                shape=str(self._draw(trial, "schedule", f.schedule)),
                weight_decay=float(self._draw(trial, "weight_decay", f.weight_decay)),
            ),
            adapter=Adapter(
                rank=int(self._draw(trial, "lora_rank", f.lora_rank)),
                alpha_ratio=float(self._draw(trial, "lora_alpha_ratio", f.lora_alpha_ratio)),
                target_modules=tuple(f.target_module_sets[str(self._draw(trial, "target_modules", f.target_modules))]),
                dropout=float(self._draw(trial, "lora_dropout", f.lora_dropout)),
            ),
            budget=Budget(
                steps=int(self._draw(trial, "steps", f.steps)),
                batch_size=int(self._draw(trial, "batch_size", f.batch_size)),
            ),
            seed=seed,
        )

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
        if values["target_modules"] is None:
            raise ValueError(f"`target_modules` {list(recipe.adapter.target_modules)} is none of the space's sets")
        for name, value in values.items():
            spec = getattr(f, name)
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
        """The recipe's value of every scalar parameter (`target_modules`: the set's name, or None)."""
        set_name = next(
            (k for k, mods in self.spec.target_module_sets.items() if tuple(mods) == recipe.adapter.target_modules),
            None,
        )
        return {
            "replay_ratio": recipe.replay.ratio,
            "peak_lr": recipe.schedule.peak_lr,
            "warmup_fraction": recipe.schedule.warmup_fraction,
            "schedule": recipe.schedule.shape,
            "weight_decay": recipe.schedule.weight_decay,
            "lora_rank": recipe.adapter.rank,
            "lora_alpha_ratio": recipe.adapter.alpha_ratio,
            "lora_dropout": recipe.adapter.dropout,
            "target_modules": set_name,
            "steps": recipe.budget.steps,
            "batch_size": recipe.budget.batch_size,
        }

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
        for name, value in self._recipe_values(recipe).items():
            spec = getattr(f, name)
            if value is None:
                notes.append(f"target_modules dropped: {list(recipe.adapter.target_modules)} is none of the sets")
            elif isinstance(spec, FixedSpec):
                if spec.fixed != value:
                    notes.append(f"{name} is fixed at {spec.fixed!r} here (the recipe had {value!r})")
            elif isinstance(spec, CategoricalSpec):
                if value in spec.choices:
                    params[name] = value
                else:
                    notes.append(f"{name} dropped: {value!r} is not one of {spec.choices}")
            else:
                clipped = _clip(spec, value)
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

    def informed_design(self) -> list[dict[str, Scalar]]:
        """A small designed start for the sampler, informed by what is known of updates.

        Forgetting is driven mostly by replay and LR, cost by the update's length, gain by all
        three (demo-world notes; arXiv 2405.09673, 2403.08763). So instead of random start-up
        trials the design spans the cost axis (steps at 15/50/85% of their range) and the
        forgetting axis (replay at its bounds and middle) at a central LoRA LR, and probes LR
        up and down once; the rest is fixed at common defaults (rank 8-16, alpha = 2r, cosine,
        all linear layers, equal mixture) where the space allows. Each point is a partial
        parameter dict: parameters it leaves out are drawn by the sampler.
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
        for name, preferred in (
            ("lora_rank", [16, 8]),
            ("lora_alpha_ratio", [2.0, 2]),
            ("schedule", ["cosine"]),
            ("target_modules", ["all_linear"]),
            ("warmup_fraction", [0.05]),
        ):
            value = _pick(getattr(f, name), preferred)
            if value is not None:
                common[name] = value
        points = []
        for steps_q, replay_q, lr_q in grid:
            point = dict(common)
            for name, q in (("steps", steps_q), ("replay_ratio", replay_q), ("peak_lr", lr_q)):
                value = _quantile(getattr(f, name), q)
                if value is not None:
                    point[name] = value
            if point not in points:
                points.append(point)
        return points

    def describe(self) -> list[tuple[str, str]]:
        """(parameter, human-readable domain) rows for `recipe-opt validate`."""
        rows: list[tuple[str, str]] = []
        m = self.spec.mixture
        if isinstance(m, FixedMixtureSpec):
            rows.append(("mixture", f"fixed {m.fixed}"))
        else:
            rows.append(("mixture", f"simplex over {', '.join(self._mixture_sources())}"))
        for name in _FIELD_RULES:
            spec = getattr(self.spec, name)
            if isinstance(spec, FixedSpec):
                rows.append((name, f"fixed {spec.fixed!r}"))
            elif isinstance(spec, CategoricalSpec):
                rows.append((name, f"one of {spec.choices}"))
            else:
                scale = "log" if spec.log else "linear"
                rows.append((name, f"{spec.type} [{spec.low:g}, {spec.high:g}] ({scale})"))
        return rows


def _clip(spec: FloatSpec | IntSpec, value: Any) -> Scalar:
    """`value` clipped into the spec's range and onto its step grid."""
    x = min(max(float(value), spec.low), spec.high)
    if spec.step is not None:
        x = spec.low + round((x - spec.low) / spec.step) * spec.step
        x = min(x, spec.high)
    return round(x) if isinstance(spec, IntSpec) else float(x)


def _quantile(spec: Any, q: float) -> Scalar | None:
    """The value at quantile `q` of a range (on its own scale), snapped to its step; None if fixed."""
    if isinstance(spec, FloatSpec):
        if spec.log:
            return float(math.exp(math.log(spec.low) + q * (math.log(spec.high) - math.log(spec.low))))
        value = spec.low + q * (spec.high - spec.low)
        if spec.step:
            value = spec.low + round((value - spec.low) / spec.step) * spec.step
        return float(min(max(value, spec.low), spec.high))
    if isinstance(spec, IntSpec):
        if spec.log:
            return round(math.exp(math.log(spec.low) + q * (math.log(spec.high) - math.log(spec.low))))
        value = spec.low + round(q * (spec.high - spec.low) / spec.step) * spec.step
        return int(min(max(value, spec.low), spec.high))
    return None


def _pick(spec: Any, preferred: Sequence[Scalar]) -> Scalar | None:
    """The first preferred value the spec allows (clipped into a range); None if fixed or none fits."""
    if isinstance(spec, CategoricalSpec):
        return next((v for v in preferred if v in spec.choices), None)
    if isinstance(spec, FloatSpec | IntSpec):
        v = preferred[0]
        if isinstance(v, int | float) and not isinstance(v, bool):
            clipped = min(max(v, spec.low), spec.high)
            return int(clipped) if isinstance(spec, IntSpec) else float(clipped)
    return None


def load_search_space(path: str | Path, sources: Sequence[str] | None) -> SearchSpace:
    """Load and validate a search-space YAML for a study whose new sources are `sources`.

    `sources=None` validates the file on its own (source names are checked only against a study).

    Raises `ConfigError` holding every problem found, each naming the file and the field.
    """
    source = str(path)
    raw = load_yaml_mapping(path)
    fields, problems = validate_fields(SpaceFile, _normalise_scalar_shorthand(raw), source)
    problems += _semantic_problems(source, fields)
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


def space_file_schema() -> Mapping[str, Any]:
    """JSON schema of the search-space file (for editors and docs)."""
    return SpaceFile.model_json_schema()
