"""The search-space file: its schema (`SpaceFile`), and the checks of a file pydantic cannot express.

The scalar parameters' defaults and descriptions come from the table in `_params.py`; `SpaceFile`
declares them as explicit fields (so pydantic and mypy see each one) and the check below the
class makes sure it declares exactly the table's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from recipe_opt.exceptions import ConfigProblem
from recipe_opt.recipe import SCHEDULE_SHAPES
from recipe_opt.space._params import LISTED, PARAM, PARAMS, Param
from recipe_opt.space._specs import (
    CategoricalSpec,
    FixedSpec,
    FloatSpec,
    MixtureSpec,
    ParamSpec,
    SimplexSpec,
    values_of,
)

__all__ = ["FILE_ORDER", "SpaceFile", "normalise_scalar_shorthand", "semantic_problems", "space_file_schema"]


def normalise_scalar_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    """`peak_lr: 1e-3` is shorthand for `peak_lr: {fixed: 1e-3}`."""
    return {
        key: {"fixed": value} if key in PARAM and isinstance(value, bool | int | float | str) else value
        for key, value in data.items()
    }


def _param_field(name: str) -> Any:
    """The field of the table's parameter `name`: its description, and its default if it has one."""
    p = PARAM[name]
    if p.default is None:
        return Field(description=p.help)
    return Field(default=FixedSpec(fixed=p.default), description=p.help)


class SpaceFile(BaseModel):
    """Schema of a search-space YAML file. Every field may be a range, a choice or fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mixture: MixtureSpec = Field(
        default_factory=lambda: SimplexSpec(type="simplex"),
        description="Weights over the new-data sources (a simplex).",
    )
    replay_ratio: ParamSpec = _param_field("replay_ratio")
    peak_lr: ParamSpec = _param_field("peak_lr")
    warmup_fraction: ParamSpec = _param_field("warmup_fraction")
    schedule: ParamSpec = _param_field("schedule")
    weight_decay: ParamSpec = _param_field("weight_decay")
    lora_rank: ParamSpec = _param_field("lora_rank")
    lora_alpha_ratio: ParamSpec = _param_field("lora_alpha_ratio")
    lora_dropout: ParamSpec = _param_field("lora_dropout")
    target_modules: ParamSpec = _param_field("target_modules")
    target_module_sets: dict[str, list[str]] = Field(
        # Markers, resolved against the loaded model before the study starts (train/_targets.py):
        # on Llama-style models exactly q,k,v,o_proj and those plus gate,up,down_proj.
        default_factory=lambda: {"attention": ["@attention"], "all_linear": ["all-linear"]},
        description="Named sets of LoRA target modules that `target_modules` chooses between: module "
        "names, or the markers `all-linear` (every linear layer but the head) and `@attention` "
        "(the attention block's linear layers), resolved against the model.",
    )
    steps: ParamSpec = _param_field("steps")
    batch_size: ParamSpec = _param_field("batch_size")


# The fields that are not scalar parameters of the table.
_OWN_FIELDS = ("mixture", "target_module_sets")
_declared = {name: info.description for name, info in SpaceFile.model_fields.items() if name not in _OWN_FIELDS}
if _declared != {p.name: p.help for p in PARAMS}:
    raise RuntimeError(f"SpaceFile's fields {sorted(_declared)} are not the parameter table's {sorted(PARAM)}")

# The table's parameters in the file's order, which is also the order `params_for` and `transfer`
# go through them (their notes come out in it).
FILE_ORDER: tuple[Param, ...] = tuple(PARAM[name] for name in SpaceFile.model_fields if name in PARAM)


def semantic_problems(source: str, f: Mapping[str, Any]) -> list[ConfigProblem]:
    """Checks pydantic cannot express: types and bounds per field (from the table), known
    schedule names, sets.

    `f` holds the fields that parsed; fields that did not are already reported and skipped here.
    """
    problems: list[ConfigProblem] = []

    def bad(field: str, message: str) -> None:
        problems.append(ConfigProblem(source, field, message))

    for p in LISTED:
        name, kind, bounds = p.name, p.kind, p.bounds
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

    for v in values_of(f.get("schedule")):
        if isinstance(v, str) and v not in SCHEDULE_SHAPES:
            bad("schedule", f"unknown schedule shape {v!r}; known: {', '.join(SCHEDULE_SHAPES)}")
    sets = f.get("target_module_sets", {})
    for v in values_of(f.get("target_modules")):
        if isinstance(v, str) and v not in sets:
            bad(
                "target_modules",
                f"{v!r} is not a key of `target_module_sets` ({', '.join(sets)})",
            )
    for key, modules in sets.items():
        if not modules:
            bad(f"target_module_sets.{key}", "must list at least one module name")
    return problems


def space_file_schema() -> Mapping[str, Any]:
    """JSON schema of the search-space file (for editors and docs)."""
    return SpaceFile.model_json_schema()
