"""The `Recipe`: the one object that flows through recipe-opt.

A recipe says how to run the next update of a deployed model: how to mix the new data sources,
how much old data to replay, the learning-rate schedule, the LoRA adapter, and the budget of the
full update. It is frozen, serialisable (dict / JSON / YAML), content-hashed, and stamped with the
versions of the libraries that produced it.

This module imports nothing of recipe-opt's and nothing heavy: it is the bottom floor.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RECIPE_FORMAT_VERSION",
    "SCHEDULE_SHAPES",
    "Adapter",
    "Budget",
    "Mixture",
    "Recipe",
    "Replay",
    "Schedule",
    "library_versions",
]

# Bumped when the serialised layout changes; `Recipe.from_dict` refuses newer formats.
RECIPE_FORMAT_VERSION = 1

# Names understood by `transformers.get_scheduler` that make sense for a short update.
SCHEDULE_SHAPES = (
    "cosine",
    "linear",
    "constant_with_warmup",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
)

_STAMPED_LIBRARIES = (
    "recipe-opt",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "optuna",
    "lm-eval",
)

# Weights are rounded before hashing so that 0.30000000000000004 and 0.3 are one recipe.
_HASH_DIGITS = 10


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a recipe's results depend on (no imports needed)."""
    versions: dict[str, str] = {}
    for name in _STAMPED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class Mixture:
    """Weights over the new-data sources; they lie on the simplex (non-negative, sum to 1)."""

    weights: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        _check(len(self.weights) > 0, "`weights` must name at least one source, but got ()")
        names = [n for n, _ in self.weights]
        _check(len(set(names)) == len(names), f"source names must be unique, but got {names}")
        for name, w in self.weights:
            _check(
                math.isfinite(w) and w >= 0.0,
                f"`weight >= 0` must hold, but got (source={name!r}, weight={w})",
            )
        total = sum(w for _, w in self.weights)
        _check(
            abs(total - 1.0) < 1e-6,
            f"`sum(weights) == 1` must hold, but got sum={total:.8f} for {dict(self.weights)}",
        )

    @classmethod
    def from_mapping(cls, weights: Mapping[str, float]) -> Mixture:
        return cls(tuple((str(k), float(v)) for k, v in weights.items()))

    def as_dict(self) -> dict[str, float]:
        return dict(self.weights)


@dataclass(frozen=True)
class Replay:
    """Share of every batch drawn from the replay pools of old data (0 = no replay)."""

    ratio: float

    def __post_init__(self) -> None:
        _check(
            0.0 <= self.ratio < 1.0,
            f"`0 <= ratio < 1` must hold, but got (ratio={self.ratio})",
        )


@dataclass(frozen=True)
class Schedule:
    """Optimiser schedule, built with `transformers.get_scheduler(shape, ...)`."""

    peak_lr: float
    warmup_fraction: float
    shape: str
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.peak_lr) and self.peak_lr > 0,
            f"`peak_lr > 0` must hold, but got (peak_lr={self.peak_lr})",
        )
        _check(
            0.0 <= self.warmup_fraction < 1.0,
            f"`0 <= warmup_fraction < 1` must hold, but got (warmup_fraction={self.warmup_fraction})",
        )
        _check(
            self.shape in SCHEDULE_SHAPES,
            f"`shape` must be one of {list(SCHEDULE_SHAPES)}, but got {self.shape!r}",
        )
        _check(self.weight_decay >= 0, f"`weight_decay >= 0` must hold, but got {self.weight_decay}")


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter (peft `LoraConfig`); `alpha = alpha_ratio * rank`."""

    rank: int
    alpha_ratio: float
    target_modules: tuple[str, ...]
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _check(self.rank >= 1, f"`rank >= 1` must hold, but got (rank={self.rank})")
        _check(self.alpha_ratio > 0, f"`alpha_ratio > 0` must hold, but got {self.alpha_ratio}")
        _check(len(self.target_modules) > 0, "`target_modules` must not be empty")
        _check(0.0 <= self.dropout < 1.0, f"`0 <= dropout < 1` must hold, but got {self.dropout}")

    @property
    def alpha(self) -> float:
        return self.alpha_ratio * self.rank


@dataclass(frozen=True)
class Budget:
    """The full update's budget: optimiser steps of `batch_size` sequences each."""

    steps: int
    batch_size: int

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"`steps >= 1` must hold, but got (steps={self.steps})")
        _check(self.batch_size >= 1, f"`batch_size >= 1` must hold, but got {self.batch_size}")


@dataclass(frozen=True)
class Recipe:
    """How to run one update. Frozen; equal recipes have equal `content_hash`."""

    mixture: Mixture
    replay: Replay
    schedule: Schedule
    adapter: Adapter
    budget: Budget
    seed: int = 0
    # Not part of the identity: which library versions produced or will consume it.
    stamp: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def identity(self) -> dict[str, Any]:
        """The fields that define the recipe (everything but the stamp), JSON-ready."""
        d = asdict(self)
        d.pop("stamp")
        d["mixture"] = {"weights": self.mixture.as_dict()}
        d["adapter"]["target_modules"] = list(self.adapter.target_modules)
        return d

    @property
    def content_hash(self) -> str:
        """sha256 over the canonical JSON of `identity()`, with floats rounded for stability."""
        canonical = json.dumps(_round_floats(self.identity()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    def with_stamp(self) -> Recipe:
        """A copy stamped with the currently installed library versions."""
        return Recipe(
            mixture=self.mixture,
            replay=self.replay,
            schedule=self.schedule,
            adapter=self.adapter,
            budget=self.budget,
            seed=self.seed,
            stamp=library_versions(),
        )

    def to_dict(self) -> dict[str, Any]:
        d = self.identity()
        d["format_version"] = RECIPE_FORMAT_VERSION
        d["content_hash"] = self.content_hash
        d["stamp"] = dict(self.stamp)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Inverse of `to_dict`. Raises `ValueError` naming the field on malformed input."""
        fmt = data.get("format_version", RECIPE_FORMAT_VERSION)
        _check(
            isinstance(fmt, int) and fmt <= RECIPE_FORMAT_VERSION,
            f"`format_version <= {RECIPE_FORMAT_VERSION}` must hold, but got {fmt!r} (written by a newer recipe-opt?)",
        )
        try:
            mixture = Mixture.from_mapping(data["mixture"]["weights"])
            replay = Replay(float(data["replay"]["ratio"]))
            s = data["schedule"]
            schedule = Schedule(
                peak_lr=float(s["peak_lr"]),
                warmup_fraction=float(s["warmup_fraction"]),
                shape=str(s["shape"]),
                weight_decay=float(s.get("weight_decay", 0.0)),
            )
            a = data["adapter"]
            adapter = Adapter(
                rank=int(a["rank"]),
                alpha_ratio=float(a["alpha_ratio"]),
                target_modules=tuple(str(m) for m in a["target_modules"]),
                dropout=float(a.get("dropout", 0.0)),
            )
            b = data["budget"]
            budget = Budget(steps=int(b["steps"]), batch_size=int(b["batch_size"]))
        except KeyError as exc:
            raise ValueError(f"recipe is missing the field {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"recipe is malformed: {exc}") from None
        recipe = cls(
            mixture=mixture,
            replay=replay,
            schedule=schedule,
            adapter=adapter,
            budget=budget,
            seed=int(data.get("seed", 0)),
            stamp={str(k): str(v) for k, v in (data.get("stamp") or {}).items()},
        )
        claimed = data.get("content_hash")
        _check(
            claimed is None or claimed == recipe.content_hash,
            f"`content_hash` does not match the recipe's fields (file says {claimed!s:.12}, "
            f"fields give {recipe.short_hash}): the file was edited by hand?",
        )
        return recipe

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_yaml(self) -> str:
        import yaml

        header = "# recipe-opt recipe: apply with the tool you train with; edit the search, not this file\n"
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write YAML (or JSON for a `.json` path) atomically: a reader never sees half a file."""
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        import yaml

        text = Path(path).read_text()
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: a recipe file must hold a mapping")
        return cls.from_dict(data)

    def summary(self) -> str:
        """One line for tables and logs."""
        mix = ", ".join(f"{k}={v:.2f}" for k, v in self.mixture.weights)
        return (
            f"mix[{mix}] replay={self.replay.ratio:.2f} lr={self.schedule.peak_lr:.2e} "
            f"{self.schedule.shape} warmup={self.schedule.warmup_fraction:.2f} "
            f"r={self.adapter.rank} alpha={self.adapter.alpha:g} steps={self.budget.steps}"
        )


def _round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, _HASH_DIGITS)
    if isinstance(value, dict):
        return {k: _round_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round_floats(v) for v in value]
    return value
