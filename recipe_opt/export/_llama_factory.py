"""The llama-factory export: a `llamafactory-cli train` YAML whose header carries the
dataset_info.json entries to register (LLaMA-Factory finds datasets by name only)."""

from __future__ import annotations

import json
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
from recipe_opt.export._sources import DIGITS, Source, resolve

if TYPE_CHECKING:
    from recipe_opt.config import StudyConfig
    from recipe_opt.export._formats import ExportFormat
    from recipe_opt.recipe import Recipe

# File suffixes LLaMA-Factory reads (its FILEEXT2TYPE).
_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


def write(fmt: ExportFormat, recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> str:
    sources, base_model = resolve(recipe, study, warnings)
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    names = [src.name for src in sources]
    dataset_info = {src.name: _entry(src) for src in sources}
    chat = [src.name for src in sources if src.format == "chat"]
    warnings.append(
        f"dataset: LLaMA-Factory finds datasets by name in dataset_info.json (in dataset_dir): register "
        f"{', '.join(names)} there; the entries are in this file's header"
    )
    unreadable = [src.path for src in sources if src.path and not src.path.endswith(_SUFFIXES)]
    if unreadable:
        warnings.append(
            f"dataset: LLaMA-Factory reads no .ndjson file: rename {', '.join(unreadable)} to .jsonl "
            "(same content) and its file_name with it"
        )
    if chat and len(chat) < len(sources):
        warnings.append(
            f"template: recipe-opt renders the chat source(s) {chat} with the tokenizer's chat template and the "
            "other sources as plain text; LLaMA-Factory applies one template to every dataset"
        )
    dataset: dict[str, Any] = {"dataset": ",".join(names)}
    if not chat:
        dataset["template"] = "empty"
    dataset.update(
        mix_strategy="interleave_over",
        interleave_probs=",".join(f"{src.share:.{DIGITS}g}" for src in sources),
    )
    sections: list[tuple[str, dict[str, Any]]] = [
        ("model", {"model_name_or_path": base_model}),
        (
            "method",
            {
                "stage": "sft",
                "do_train": True,
                "finetuning_type": "lora",
                "lora_rank": a.rank,
                "lora_alpha": number(a.alpha),
                "lora_dropout": a.dropout,
                "lora_target": "all" if targets_all_linear(recipe) else ",".join(a.target_modules),
            },
        ),
        ("dataset", dataset),
        ("output", {"output_dir": f"saves/recipe-{recipe.short_hash}"}),
        (
            "train",
            {
                "per_device_train_batch_size": b.batch_size,
                "gradient_accumulation_steps": 1,
                "learning_rate": s.peak_lr,
                "lr_scheduler_type": scheduler(recipe, fmt, warnings),
                "warmup_steps": warmup_steps(recipe),
                "weight_decay": s.weight_decay,
                "max_steps": b.steps,
                "seed": recipe.seed,
            },
        ),
    ]
    template_note = (
        "template: set `template:` to the model's LLaMA-Factory template (recipe-opt renders chat with the "
        "tokenizer's own chat template)"
        if chat
        else "template: empty trains on plain prompt + completion, as recipe-opt does"
    )
    notes = [
        f"run: llamafactory-cli train {fmt.suggested_name}",
        "dataset_info.json entries:",
        *(f"  {json.dumps({name: info})}" for name, info in dataset_info.items()),
        template_note,
        BATCH_NOTE,
        *(f"WARNING: {w}" for w in warnings),
    ]
    return header(recipe, "LLaMA-Factory LoRA config", notes) + "\n" + yaml_sections(sections)


def _entry(src: Source) -> dict[str, Any]:
    """The source's dataset_info.json entry, reading it as recipe-opt does."""
    entry: dict[str, Any] = {"file_name": src.path} if src.path is not None else {"hf_hub_url": src.dataset}
    if src.path is None:
        entry.update({"subset": src.subset} if src.subset else {})
        entry["split"] = src.split
    if src.format == "chat":  # OpenAI-style messages
        entry.update(formatting="sharegpt", columns={"messages": src.column("messages")}, tags=_OPENAI_TAGS)
    elif src.format == "text":  # an empty prompt: the loss is on the whole text
        entry["columns"] = {"response": src.column("text")}
    else:
        entry["columns"] = {"prompt": src.column("prompt"), "response": src.column("completion")}
    return entry
