"""Pydantic models of one entry of a search-space file, and what can be read off one entry.

A scalar parameter is a range (`FloatSpec`, `IntSpec`), a choice (`CategoricalSpec`) or pinned
(`FixedSpec`); the mixture is a simplex (`SimplexSpec`) or pinned weights (`FixedMixtureSpec`).
Which parameters exist, and what each may hold, is the table in `_params.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

__all__ = [
    "CategoricalSpec",
    "FixedMixtureSpec",
    "FixedSpec",
    "FloatSpec",
    "IntSpec",
    "MixtureSpec",
    "ParamSpec",
    "Scalar",
    "SimplexSpec",
    "clip",
    "pick",
    "quantile",
    "values_of",
]

Scalar = bool | int | float | str


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


def values_of(spec: Any) -> list[Any]:
    """The values a choice or a pinned value allows; [] for a range."""
    if isinstance(spec, FixedSpec):
        return [spec.fixed]
    if isinstance(spec, CategoricalSpec):
        return list(spec.choices)
    return []


def clip(spec: FloatSpec | IntSpec, value: Any) -> Scalar:
    """`value` clipped into the spec's range and onto its step grid."""
    x = min(max(float(value), spec.low), spec.high)
    if spec.step is not None:
        x = spec.low + round((x - spec.low) / spec.step) * spec.step
        x = min(x, spec.high)
    return round(x) if isinstance(spec, IntSpec) else float(x)


def quantile(spec: Any, q: float) -> Scalar | None:
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


def pick(spec: Any, preferred: Sequence[Scalar]) -> Scalar | None:
    """The first preferred value the spec allows (clipped into a range); None if fixed or none fits."""
    if isinstance(spec, CategoricalSpec):
        return next((v for v in preferred if v in spec.choices), None)
    if isinstance(spec, FloatSpec | IntSpec):
        v = preferred[0]
        if isinstance(v, int | float) and not isinstance(v, bool):
            clipped = min(max(v, spec.low), spec.high)
            return int(clipped) if isinstance(spec, IntSpec) else float(clipped)
    return None
