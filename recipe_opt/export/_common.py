"""What every target tool's export shares: the provenance stamp and `#` header, the YAML layout,
and the recipe values written the same way for all of them (alpha, warmup steps, scheduler,
all-linear targets)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from recipe_opt.recipe import SCHEDULE_SHAPES, Recipe

if TYPE_CHECKING:
    from recipe_opt.export._formats import ExportFormat

# `transformers.SchedulerType` values; Trainer, LLaMA-Factory and axolotl all accept them.
HF_SCHEDULER_NAMES = frozenset(
    {
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "reduce_lr_on_plateau",
        "cosine_with_min_lr",
        "warmup_stable_decay",
    }
)
# Recipe shape -> scheduler name, for a tool that takes SchedulerType names (all three do).
# Every shape recipe-opt allows is a SchedulerType name.
SCHEDULER_TYPE_NAMES: Mapping[str, str] = MappingProxyType(
    {shape: shape for shape in SCHEDULE_SHAPES if shape in HF_SCHEDULER_NAMES}
)

# Every linear layer of a Llama-style decoder block; `all` / `lora_target_linear` select these.
ALL_LINEAR_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})

BATCH_NOTE = (
    "budget.batch_size is sequences per optimiser step: on N GPUs divide the per-device batch size by N "
    "(or raise gradient_accumulation_steps) to keep it"
)


def _version() -> str:
    from recipe_opt import __version__

    return __version__


def provenance(recipe: Recipe, fmt: str) -> dict[str, Any]:
    """The `_recipe_opt` stamp of a JSON export: which recipe, which recipe-opt, which format."""
    return {
        "content_hash": recipe.content_hash,
        "recipe_opt_version": _version(),
        "format": fmt,
        "summary": recipe.summary(),
    }


def header(recipe: Recipe, title: str, lines: list[str]) -> str:
    """The `#` header of a YAML export: the provenance, then `lines` as comments."""
    out = [
        f"# {title}, exported by recipe-opt {_version()}",
        f"# recipe content_hash: {recipe.content_hash}",
        f"# {recipe.summary()}",
    ]
    stamp = {k: v for k, v in recipe.stamp.items() if k in ("transformers", "peft", "torch")}
    if stamp:
        out.append("# recipe stamped with: " + ", ".join(f"{k} {v}" for k, v in stamp.items()))
    out += [f"# {line}".rstrip() for text in lines for line in text.splitlines()]
    return "\n".join(out) + "\n"


def yaml_sections(sections: list[tuple[str, dict[str, Any]]]) -> str:
    """One YAML mapping, written as titled blocks in the given order."""
    blocks = [
        f"### {title}\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=1000)
        for title, body in sections
    ]
    return "\n".join(blocks)


def number(value: float) -> int | float:
    """Whole floats as ints (LoRA alpha 16.0 -> 16), others unchanged."""
    return int(value) if float(value).is_integer() else value


def warmup_steps(recipe: Recipe) -> int:
    # As recipe-opt's trainer does (train/_proxy.py), so the full run warms up for the same steps.
    return round(recipe.schedule.warmup_fraction * recipe.budget.steps)


def scheduler(recipe: Recipe, fmt: ExportFormat, warnings: list[str]) -> str:
    """The recipe's schedule shape as `fmt`'s scheduler name (its registry entry's naming)."""
    shape = recipe.schedule.shape
    name = fmt.scheduler_names.get(shape)
    if name is None:  # pragma: no cover - every shape recipe-opt allows has a name today
        warnings.append(f"schedule.shape: {fmt.name} has no {shape!r} schedule; wrote 'cosine', set it by hand")
        return "cosine"
    return name


def targets_all_linear(recipe: Recipe) -> bool:
    return frozenset(recipe.adapter.target_modules) == ALL_LINEAR_MODULES
