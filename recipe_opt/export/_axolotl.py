"""The axolotl export: an `axolotl train` YAML. axolotl has no per-dataset weights, so the mixture
and the replay share are dropped with a warning saying how to pre-mix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recipe_opt.export._common import (
    BATCH_NOTE,
    header,
    number,
    scheduler,
    targets_all_linear,
    warmup_steps,
    yaml_sections,
)
from recipe_opt.export._sources import Source, loader, resolve, shares_text

if TYPE_CHECKING:
    from recipe_opt.config import StudyConfig
    from recipe_opt.export._formats import ExportFormat
    from recipe_opt.recipe import Recipe


def write(fmt: ExportFormat, recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> str:
    sources, base_model = resolve(recipe, study, warnings)
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    warnings.append(
        f"mixture.weights: axolotl has no per-dataset sampling weights, so the shares ({shares_text(sources)}) "
        "were dropped and each source counts by its size; to keep them, write one pre-mixed file with "
        "datasets.interleave_datasets(..., probabilities=[...], stopping_strategy='all_exhausted') and list "
        "only that file under `datasets`"
    )
    if recipe.replay.ratio > 0:
        replay = [src.name for src in sources if src.role == "replay"]
        warnings.append(
            f"replay.ratio: dropped with the mixture: the replay pool(s) {replay} are plain datasets, so they "
            f"make up their size share of every batch instead of {recipe.replay.ratio:g}; pre-mix as above"
        )
    alpha: int | float = number(a.alpha)
    if isinstance(alpha, float):
        rounded = max(1, round(alpha))
        warnings.append(
            f"adapter.alpha_ratio: axolotl's lora_alpha is an integer; alpha {alpha:g} ({a.alpha_ratio:g} x rank "
            f"{a.rank}) was rounded to {rounded}, so the LoRA scale is {rounded / a.rank:g} instead of "
            f"{a.alpha_ratio:g}"
        )
        alpha = rounded
    targets: dict[str, Any] = (
        {"lora_target_linear": True} if targets_all_linear(recipe) else {"lora_target_modules": list(a.target_modules)}
    )
    dataset: dict[str, Any] = {
        "datasets": [_dataset(src) for src in sources],
        "train_on_inputs": False,
    }
    if any(src.format == "chat" for src in sources):
        dataset["chat_template"] = "tokenizer_default"  # recipe-opt renders chat with the tokenizer's template
    sections: list[tuple[str, dict[str, Any]]] = [
        ("model", {"base_model": base_model}),
        (
            "adapter",
            {"adapter": "lora", "lora_r": a.rank, "lora_alpha": alpha, "lora_dropout": a.dropout, **targets},
        ),
        ("dataset", dataset),
        ("output", {"output_dir": f"./outputs/recipe-{recipe.short_hash}"}),
        (
            "train",
            {
                "micro_batch_size": b.batch_size,
                "gradient_accumulation_steps": 1,
                "learning_rate": s.peak_lr,
                "lr_scheduler": scheduler(recipe, fmt, warnings),
                "warmup_steps": warmup_steps(recipe),
                "weight_decay": s.weight_decay,
                "max_steps": b.steps,
                "seed": recipe.seed,
            },
        ),
    ]
    notes = [
        f"run: axolotl train {fmt.suggested_name}",
        BATCH_NOTE,
        *(f"WARNING: {w}" for w in warnings),
    ]
    return header(recipe, "axolotl LoRA config", notes) + "\n" + yaml_sections(sections)


def _dataset(src: Source) -> dict[str, Any]:
    """The source's `datasets:` entry, reading it as recipe-opt does."""
    entry: dict[str, Any] = (
        {"path": src.path, "ds_type": loader(src.path)}
        if src.path is not None
        else {"path": src.dataset, **({"name": src.subset} if src.subset else {}), "split": src.split}
    )
    if src.format == "chat":
        entry.update(
            type="chat_template",
            field_messages=src.column("messages"),
            message_property_mappings={"role": "role", "content": "content"},
            roles_to_train=["assistant"],
        )
    elif src.format == "text":
        entry.update(type="completion", field=src.column("text"))
    else:
        entry["type"] = {
            "field_instruction": src.column("prompt"),
            "field_output": src.column("completion"),
            "format": "{instruction}",
            "no_input_format": "{instruction}",
        }
    return entry
