"""The hf-trainer export: JSON with `transformers.TrainingArguments` and `peft.LoraConfig` keyword
arguments, and the data mixture to build with `datasets.interleave_datasets` (Trainer mixes none)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from recipe_opt.export._common import BATCH_NOTE, number, provenance, scheduler, warmup_steps
from recipe_opt.export._sources import FIELDS, Source, loader, resolve

if TYPE_CHECKING:
    from recipe_opt.config import StudyConfig
    from recipe_opt.export._formats import ExportFormat
    from recipe_opt.recipe import Recipe


def write(fmt: ExportFormat, recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> str:
    sources, base_model = resolve(recipe, study, warnings)
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    training_arguments = {
        "learning_rate": s.peak_lr,
        "lr_scheduler_type": scheduler(recipe, fmt, warnings),
        "warmup_steps": warmup_steps(recipe),
        "weight_decay": s.weight_decay,
        "max_steps": b.steps,
        "per_device_train_batch_size": b.batch_size,
        "gradient_accumulation_steps": 1,
        "seed": recipe.seed,
    }
    lora_config = {
        "r": a.rank,
        "lora_alpha": number(a.alpha),
        "lora_dropout": a.dropout,
        "target_modules": list(a.target_modules),
        "task_type": "CAUSAL_LM",
    }
    data_mixture = {
        "sources": [_source(src) for src in sources],
        "probabilities": [src.share for src in sources],
        "stopping_strategy": "all_exhausted",
        "seed": recipe.seed,
    }
    warnings.append(
        "mixture.weights: transformers.Trainer trains on one dataset and mixes none; build train_dataset by hand: "
        "load each of data_mixture['sources'] (load_dataset(loader, data_files=...) or load_dataset(dataset, "
        "subset, split=...)), tokenise it by its `format` with the loss where recipe-opt puts it (the completion, "
        "the assistant turns, or every token of a text), and mix them with datasets.interleave_datasets(..., "
        "probabilities=data_mixture['probabilities'], seed=data_mixture['seed'], "
        "stopping_strategy=data_mixture['stopping_strategy'])"
    )
    if recipe.replay.ratio > 0:
        replay = [src.name for src in sources if src.role == "replay"]
        warnings.append(
            f"replay.ratio: Trainer has no replay; the replay pool(s) {replay} are entries of data_mixture "
            f"sharing {recipe.replay.ratio:g} of the probabilities: keep them in the interleave"
        )
    stamp = provenance(recipe, fmt.name)
    stamp["stamp"] = dict(recipe.stamp)
    stamp["notes"] = [
        "training_arguments: transformers.TrainingArguments(output_dir=..., **training_arguments)",
        "lora_config: peft.LoraConfig(**lora_config)",
        BATCH_NOTE,
    ]
    stamp["warnings"] = list(warnings)
    data = {
        "_recipe_opt": stamp,
        "model_name_or_path": base_model,
        "training_arguments": training_arguments,
        "lora_config": lora_config,
        "data_mixture": data_mixture,
    }
    return json.dumps(data, indent=2) + "\n"


def _source(src: Source) -> dict[str, Any]:
    """The source's data_mixture entry: how to load it and how to read it."""
    origin: dict[str, Any] = (
        {"loader": loader(src.path), "data_files": src.path}
        if src.path is not None
        else {"dataset": src.dataset, "subset": src.subset, "split": src.split}
    )
    return {
        "name": src.name,
        "role": src.role,
        "probability": src.share,
        **origin,
        "format": src.format,
        "columns": {ours: src.column(ours) for ours in FIELDS[src.format]},
    }
