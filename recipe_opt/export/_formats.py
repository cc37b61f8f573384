"""Write a `Recipe` as the config of the full update run, for the tool the user trains with.

`export_recipe(recipe, fmt, study=...)` is pure: it returns the file's text, a file name to
suggest and one warning per recipe field the target cannot express (with what to do by hand).
Every file carries the recipe's content hash and the recipe-opt version (a `#` header in YAML,
a `_recipe_opt` key in JSON), so a run can be traced back to the recipe that planned it.

How each recipe field is written (the README has the same table, with the reasons):

======================== ========================== ======================== ======================== =======
Recipe field             hf-trainer (JSON)          llama-factory (YAML)     axolotl (YAML)           json
======================== ========================== ======================== ======================== =======
mixture.weights          data_mixture.probabilities interleave_probs (+      dropped, warning:        as is
                         (Trainer mixes nothing:    dataset, mix_strategy    datasets are listed
                         warning)                   interleave_over)         without weights
replay.ratio             in the probabilities: new  in interleave_probs,     dropped, warning         as is
                         x (1 - ratio), pools split the same way
                         ratio by weight (warning)
schedule.peak_lr         learning_rate              learning_rate            learning_rate            as is
schedule.warmup_fraction warmup_steps =             warmup_steps (same)      warmup_steps (same)      as is
                         round(fraction x steps)
schedule.shape           lr_scheduler_type          lr_scheduler_type        lr_scheduler             as is
schedule.weight_decay    weight_decay               weight_decay             weight_decay             as is
adapter.rank             lora_config.r              lora_rank                lora_r                   as is
adapter.alpha_ratio      lora_config.lora_alpha =   lora_alpha (same)        lora_alpha (an int:      as is
                         ratio x rank                                        rounded, warning)
adapter.dropout          lora_config.lora_dropout   lora_dropout             lora_dropout             as is
adapter.target_modules   lora_config.target_modules lora_target: joined by   lora_target_modules, or  as is
                                                    commas, or `all` (*)     lora_target_linear (*)
budget.steps             max_steps                  max_steps                max_steps                as is
budget.batch_size        per_device_train_batch_    per_device_train_batch_  micro_batch_size,        as is
                         size, grad. accumulation 1 size, grad. accum. 1     grad. accumulation 1
seed                     seed, data_mixture.seed    seed                     seed                     as is
content_hash, stamp      `_recipe_opt` key          `#` header               `#` header               both
study base_model         model_name_or_path         model_name_or_path       base_model               -
study sources            data_mixture.sources (file dataset_info.json        datasets[]: path, ds_type -
                         or dataset, format,        entries in the header    or name/split, type by
                         columns)                   (warning: register them) format
======================== ========================== ======================== ======================== =======

(*) when the recipe targets the seven projections of a Llama-style decoder (q, k, v, o, gate,
up, down), which are all its linear layers but `lm_head`.

Warmup is written as whole steps, computed as recipe-opt's own trainer does, rather than as a
ratio: transformers 5 dropped `warmup_ratio`, and each tool rounds a ratio differently.
The schedule shapes recipe-opt allows are `transformers.SchedulerType` names, which all three
tools pass to `transformers.get_scheduler` unchanged. Sources are interleaved with
oversampling (`all_exhausted` / `interleave_over`) because recipe-opt's own sampler cycles every
source: undersampling would stop the mixed set at the first exhausted source and keep showing
the same few examples of the others.

Data sources keep their study config's origin (a file, resolved against data_root, or a
`datasets` dataset with subset and split), format and column names. Each tool reads them as
recipe-opt does: prompt/completion with the loss on the completion (LLaMA-Factory alpaca
columns, axolotl's custom instruction type), chat `messages` with the loss on the assistant
turns and the tokenizer's chat template (LLaMA-Factory sharegpt with OpenAI tags, axolotl
`chat_template`), plain text with the loss on every token (LLaMA-Factory alpaca with only a
response, axolotl `completion`). A source whose format is `auto` is decided from its first row,
as recipe-opt decides it; a `datasets` dataset is not loaded for that (a warning says so).
"""

from __future__ import annotations

import difflib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from recipe_opt.data import parse_rows, read_rows, source_shares
from recipe_opt.exceptions import ConfigError, RecipeOptError
from recipe_opt.recipe import SCHEDULE_SHAPES, Recipe

if TYPE_CHECKING:
    from recipe_opt.config import SourceConfig, StudyConfig

__all__ = ["EXPORT_FORMATS", "ExportResult", "check_format", "export_recipe"]

EXPORT_FORMATS = ("hf-trainer", "llama-factory", "axolotl", "json")

_SUGGESTED_NAMES = {
    "hf-trainer": "hf_trainer_lora.json",
    "llama-factory": "llama_factory_lora.yaml",
    "axolotl": "axolotl_lora.yaml",
    "json": "recipe.json",
}

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
# Recipe shape -> scheduler name per tool. Every shape recipe-opt allows is a SchedulerType name.
SCHEDULER_NAMES: dict[str, dict[str, str]] = {
    tool: {shape: shape for shape in SCHEDULE_SHAPES if shape in HF_SCHEDULER_NAMES}
    for tool in ("hf-trainer", "llama-factory", "axolotl")
}

# Every linear layer of a Llama-style decoder block; `all` / `lora_target_linear` select these.
ALL_LINEAR_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})

# Our field names per data format (as in recipe_opt.data); a source's `columns` maps them.
_FIELDS = {"prompt_completion": ("prompt", "completion"), "chat": ("messages",), "text": ("text",)}
# load_dataset builder per data file suffix (axolotl's ds_type, the hf-trainer loader).
_LOADERS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# File suffixes LLaMA-Factory reads (its FILEEXT2TYPE).
_LLAMA_FACTORY_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}

PLACEHOLDER_BASE_MODEL = "PATH/TO/BASE_MODEL"
_PLACEHOLDER_REPLAY = ("replay", "replay_pool", "replay_data")
_DIGITS = 10  # probabilities are rounded for reading; the sum stays within 1e-9 of 1
_BATCH_NOTE = (
    "budget.batch_size is sequences per optimiser step: on N GPUs divide the per-device batch size by N "
    "(or raise gradient_accumulation_steps) to keep it"
)


@dataclass(frozen=True)
class ExportResult:
    """One exported file: its text, a name to suggest for it, and what the target lost."""

    format: str
    text: str
    suggested_name: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    """One data source as exported: its share of every batch, where it lives, how it reads."""

    name: str
    role: str  # "new" | "replay"
    share: float
    path: str | None  # resolved data file (the source's name when no study was given)
    dataset: str | None = None  # a `datasets` dataset instead of a file
    subset: str | None = None
    split: str = "train"
    format: str = "prompt_completion"
    columns: Mapping[str, str] = field(default_factory=dict)  # our field -> the source's column

    def column(self, ours: str) -> str:
        return self.columns.get(ours, ours)


def check_format(fmt: str) -> str:
    """The canonical format name, or a `ConfigError` naming `--format` with a suggestion."""
    canonical = fmt.strip().lower().replace("_", "-")
    if canonical in EXPORT_FORMATS:
        return canonical
    choices = ", ".join(EXPORT_FORMATS)
    close = difflib.get_close_matches(canonical, EXPORT_FORMATS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? (formats: {choices})" if close else f"formats: {choices}"
    raise ConfigError.single("--format", "", f"unknown export format {fmt!r}; {hint}")


def export_recipe(recipe: Recipe, fmt: str, *, study: StudyConfig | None = None) -> ExportResult:
    """Write `recipe` in format `fmt` (one of `EXPORT_FORMATS`).

    With `study`, data sources are written as their resolved files or `datasets` datasets (the
    replay pools included, splitting the replay share by their weights), with their format and
    columns, and the base model path is filled in; without it, sources are written by name as
    prompt/completion files and the paths are placeholders (a warning says so).
    Raises `ConfigError` for an unknown format or a recipe that does not fit the study.
    """
    fmt = check_format(fmt)
    if fmt == "json":
        data = {"_recipe_opt": _provenance(recipe, fmt), **recipe.to_dict()}
        return ExportResult(fmt, json.dumps(data, indent=2) + "\n", _SUGGESTED_NAMES[fmt], [])
    warnings: list[str] = []
    sources = _sources(recipe, study, warnings)
    base_model = str(study.base_model_path) if study is not None else PLACEHOLDER_BASE_MODEL
    if study is not None:
        _check_paths_exist(study, sources, warnings)
    if fmt == "hf-trainer":
        text = _hf_trainer(recipe, sources, base_model, warnings)
    elif fmt == "llama-factory":
        text = _llama_factory(recipe, sources, base_model, warnings)
    else:
        text = _axolotl(recipe, sources, base_model, warnings)
    return ExportResult(fmt, text, _SUGGESTED_NAMES[fmt], warnings)


# ---- shared pieces ------------------------------------------------------------------------------
def _version() -> str:
    from recipe_opt import __version__

    return __version__


def _provenance(recipe: Recipe, fmt: str) -> dict[str, Any]:
    return {
        "content_hash": recipe.content_hash,
        "recipe_opt_version": _version(),
        "format": fmt,
        "summary": recipe.summary(),
    }


def _header(recipe: Recipe, title: str, lines: list[str]) -> str:
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


def _yaml(sections: list[tuple[str, dict[str, Any]]]) -> str:
    blocks = [
        f"### {title}\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=1000)
        for title, body in sections
    ]
    return "\n".join(blocks)


def _number(value: float) -> int | float:
    """Whole floats as ints (LoRA alpha 16.0 -> 16), others unchanged."""
    return int(value) if float(value).is_integer() else value


def _warmup_steps(recipe: Recipe) -> int:
    # As recipe-opt's trainer does (train/_proxy.py), so the full run warms up for the same steps.
    return round(recipe.schedule.warmup_fraction * recipe.budget.steps)


def _scheduler(recipe: Recipe, tool: str, warnings: list[str]) -> str:
    shape = recipe.schedule.shape
    name = SCHEDULER_NAMES[tool].get(shape)
    if name is None:  # pragma: no cover - every shape recipe-opt allows has a name today
        warnings.append(f"schedule.shape: {tool} has no {shape!r} schedule; wrote 'cosine', set it by hand")
        return "cosine"
    return name


def _targets_all_linear(recipe: Recipe) -> bool:
    return frozenset(recipe.adapter.target_modules) == ALL_LINEAR_MODULES


def _loader(path: str) -> str:
    return _LOADERS.get(Path(path).suffix.lower(), "json")


# ---- data sources -------------------------------------------------------------------------------
def _sources(recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> list[_Source]:
    """Every source with a positive share of each batch, in the order recipe-opt lists them."""
    new = recipe.mixture.as_dict()
    ratio = recipe.replay.ratio
    if study is None:
        placeholder = next(n for n in _PLACEHOLDER_REPLAY if n not in new)
        replay_weights = {placeholder: 1.0} if ratio > 0 else {}
        names = [*new, *replay_weights]
        warnings.append(
            f"no study config given: the base model ({PLACEHOLDER_BASE_MODEL}) and the data files "
            f"({', '.join(names)}, read as prompt/completion) are placeholders; pass --study STUDY.yaml "
            "to fill them in"
        )
        if ratio > 0:
            warnings.append(
                f"replay.ratio: the replay pools are defined in the study config, so the replay share {ratio:g} "
                f"went to one placeholder source {placeholder!r}; pass --study to split it over the pools"
            )
        shares = source_shares(new, ratio, replay_weights)
        return [
            _Source(name, "new" if name in new else "replay", round(share, _DIGITS), name)
            for name, share in shares.items()
        ]
    where = str(study.config_path) if study.config_path else "--study"
    unknown = [name for name in new if name not in study.sources.new]
    if unknown:
        raise ConfigError.single(
            where,
            "sources.new",
            f"the recipe mixes source(s) {unknown} that the study does not define "
            f"(it has {list(study.sources.new)}): is the recipe from another study?",
        )
    replay_weights = {name: pool.weight for name, pool in study.sources.replay.items()}
    if ratio > 0 and not replay_weights:
        raise ConfigError.single(
            where, "sources.replay", f"the recipe replays {ratio:g} of every batch but the study has no replay pool"
        )
    configs: dict[str, tuple[str, SourceConfig]] = {name: ("new", src) for name, src in study.sources.new.items()}
    configs.update({name: ("replay", src) for name, src in study.sources.replay.items()})
    out = []
    for name, share in source_shares(new, ratio, replay_weights).items():
        role, src = configs[name]
        file = study.source_path(src)
        path = str(file) if file is not None else None
        out.append(
            _Source(
                name,
                role,
                round(share, _DIGITS),
                path,
                dataset=src.dataset,
                subset=src.subset,
                split=src.split,
                format=_format_of(f"sources.{role}.{name}", src, path, warnings),
                columns=dict(src.columns),
            )
        )
    return out


def _format_of(where: str, src: SourceConfig, path: str | None, warnings: list[str]) -> str:
    """The source's data format: as configured, implied by its `columns`, or, for `auto`, decided
    from the file's first row the way recipe-opt decides it."""
    if src.format != "auto":
        return str(src.format)
    implied = [fmt for fmt, fields in _FIELDS.items() if set(src.columns) & set(fields)]
    if len(implied) == 1:
        return implied[0]
    if path is not None and Path(path).is_file():
        try:
            first = itertools.islice(read_rows(path), 1)
            return parse_rows(where, first, format="auto", columns=src.columns).format
        except RecipeOptError:
            pass
    why = "a `datasets` dataset is not loaded to export" if path is None else "its first row did not tell"
    warnings.append(
        f"{where}: format `auto` could not be decided here ({why}); written as prompt/completion: "
        "set `format:` on the source in the study config if it is chat or text"
    )
    return "prompt_completion"


def _check_paths_exist(study: StudyConfig, sources: list[_Source], warnings: list[str]) -> None:
    missing = [s.path for s in sources if s.path is not None and not Path(s.path).is_file()]
    if not study.base_model_path.is_dir():
        missing.insert(0, str(study.base_model_path))
    if missing:
        warnings.append(f"not found (yet?): {', '.join(missing)}; the export names them anyway")


def _shares_text(sources: list[_Source]) -> str:
    return ", ".join(f"{s.name} {s.share:g}" for s in sources)


# ---- formats ------------------------------------------------------------------------------------
def _hf_source(src: _Source) -> dict[str, Any]:
    origin: dict[str, Any] = (
        {"loader": _loader(src.path), "data_files": src.path}
        if src.path is not None
        else {"dataset": src.dataset, "subset": src.subset, "split": src.split}
    )
    return {
        "name": src.name,
        "role": src.role,
        "probability": src.share,
        **origin,
        "format": src.format,
        "columns": {ours: src.column(ours) for ours in _FIELDS[src.format]},
    }


def _hf_trainer(recipe: Recipe, sources: list[_Source], base_model: str, warnings: list[str]) -> str:
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    training_arguments = {
        "learning_rate": s.peak_lr,
        "lr_scheduler_type": _scheduler(recipe, "hf-trainer", warnings),
        "warmup_steps": _warmup_steps(recipe),
        "weight_decay": s.weight_decay,
        "max_steps": b.steps,
        "per_device_train_batch_size": b.batch_size,
        "gradient_accumulation_steps": 1,
        "seed": recipe.seed,
    }
    lora_config = {
        "r": a.rank,
        "lora_alpha": _number(a.alpha),
        "lora_dropout": a.dropout,
        "target_modules": list(a.target_modules),
        "task_type": "CAUSAL_LM",
    }
    data_mixture = {
        "sources": [_hf_source(src) for src in sources],
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
    provenance = _provenance(recipe, "hf-trainer")
    provenance["stamp"] = dict(recipe.stamp)
    provenance["notes"] = [
        "training_arguments: transformers.TrainingArguments(output_dir=..., **training_arguments)",
        "lora_config: peft.LoraConfig(**lora_config)",
        _BATCH_NOTE,
    ]
    provenance["warnings"] = list(warnings)
    data = {
        "_recipe_opt": provenance,
        "model_name_or_path": base_model,
        "training_arguments": training_arguments,
        "lora_config": lora_config,
        "data_mixture": data_mixture,
    }
    return json.dumps(data, indent=2) + "\n"


def _llama_factory_entry(src: _Source) -> dict[str, Any]:
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


def _llama_factory(recipe: Recipe, sources: list[_Source], base_model: str, warnings: list[str]) -> str:
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    names = [src.name for src in sources]
    dataset_info = {src.name: _llama_factory_entry(src) for src in sources}
    chat = [src.name for src in sources if src.format == "chat"]
    warnings.append(
        f"dataset: LLaMA-Factory finds datasets by name in dataset_info.json (in dataset_dir): register "
        f"{', '.join(names)} there; the entries are in this file's header"
    )
    unreadable = [src.path for src in sources if src.path and not src.path.endswith(_LLAMA_FACTORY_SUFFIXES)]
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
        interleave_probs=",".join(f"{src.share:.{_DIGITS}g}" for src in sources),
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
                "lora_alpha": _number(a.alpha),
                "lora_dropout": a.dropout,
                "lora_target": "all" if _targets_all_linear(recipe) else ",".join(a.target_modules),
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
                "lr_scheduler_type": _scheduler(recipe, "llama-factory", warnings),
                "warmup_steps": _warmup_steps(recipe),
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
        "run: llamafactory-cli train llama_factory_lora.yaml",
        "dataset_info.json entries:",
        *(f"  {json.dumps({name: info})}" for name, info in dataset_info.items()),
        template_note,
        _BATCH_NOTE,
        *(f"WARNING: {w}" for w in warnings),
    ]
    return _header(recipe, "LLaMA-Factory LoRA config", notes) + "\n" + _yaml(sections)


def _axolotl_dataset(src: _Source) -> dict[str, Any]:
    """The source's `datasets:` entry, reading it as recipe-opt does."""
    entry: dict[str, Any] = (
        {"path": src.path, "ds_type": _loader(src.path)}
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


def _axolotl(recipe: Recipe, sources: list[_Source], base_model: str, warnings: list[str]) -> str:
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    warnings.append(
        f"mixture.weights: axolotl has no per-dataset sampling weights, so the shares ({_shares_text(sources)}) "
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
    alpha: int | float = _number(a.alpha)
    if isinstance(alpha, float):
        rounded = max(1, round(alpha))
        warnings.append(
            f"adapter.alpha_ratio: axolotl's lora_alpha is an integer; alpha {alpha:g} ({a.alpha_ratio:g} x rank "
            f"{a.rank}) was rounded to {rounded}, so the LoRA scale is {rounded / a.rank:g} instead of "
            f"{a.alpha_ratio:g}"
        )
        alpha = rounded
    targets: dict[str, Any] = (
        {"lora_target_linear": True} if _targets_all_linear(recipe) else {"lora_target_modules": list(a.target_modules)}
    )
    dataset: dict[str, Any] = {
        "datasets": [_axolotl_dataset(src) for src in sources],
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
                "lr_scheduler": _scheduler(recipe, "axolotl", warnings),
                "warmup_steps": _warmup_steps(recipe),
                "weight_decay": s.weight_decay,
                "max_steps": b.steps,
                "seed": recipe.seed,
            },
        ),
    ]
    notes = [
        "run: axolotl train axolotl_lora.yaml",
        _BATCH_NOTE,
        *(f"WARNING: {w}" for w in warnings),
    ]
    return _header(recipe, "axolotl LoRA config", notes) + "\n" + _yaml(sections)
