"""The export formats, one registry entry each, and `export_recipe`, which writes a `Recipe` in one.

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

How each data source is located and read: `recipe_opt.export._sources`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from recipe_opt.exceptions import ConfigError
from recipe_opt.export import _axolotl, _hf_trainer, _json, _llama_factory
from recipe_opt.export._common import ALL_LINEAR_MODULES as ALL_LINEAR_MODULES  # re-exported: tests check by it
from recipe_opt.export._common import HF_SCHEDULER_NAMES as HF_SCHEDULER_NAMES  # re-exported: tests check by it
from recipe_opt.export._common import SCHEDULER_TYPE_NAMES

if TYPE_CHECKING:
    from recipe_opt.config import StudyConfig
    from recipe_opt.recipe import Recipe

__all__ = ["EXPORT_FORMATS", "ExportFormat", "ExportResult", "check_format", "export_recipe", "format_names_text"]


class Writer(Protocol):
    """A format's writer: the file's text; it appends what the target cannot express to `warnings`."""

    def __call__(self, fmt: ExportFormat, recipe: Recipe, study: StudyConfig | None, warnings: list[str], /) -> str: ...


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its `--format` name, the file name to suggest, a line of help, its writer."""

    name: str
    suggested_name: str
    help: str
    write: Writer
    # Recipe schedule shape -> the tool's scheduler name (empty: the format names no scheduler).
    scheduler_names: Mapping[str, str] = field(default_factory=dict)


# The one table of formats: every other list of them (names, file names, dispatch, help) derives from it.
_FORMATS: Mapping[str, ExportFormat] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            ExportFormat(
                "hf-trainer",
                "hf_trainer_lora.json",
                "transformers.Trainer + peft: TrainingArguments, LoraConfig and the data mixture to build (JSON)",
                _hf_trainer.write,
                SCHEDULER_TYPE_NAMES,
            ),
            ExportFormat(
                "llama-factory",
                "llama_factory_lora.yaml",
                "LLaMA-Factory: a `llamafactory-cli train` config (YAML)",
                _llama_factory.write,
                SCHEDULER_TYPE_NAMES,
            ),
            ExportFormat(
                "axolotl",
                "axolotl_lora.yaml",
                "axolotl: an `axolotl train` config (YAML)",
                _axolotl.write,
                SCHEDULER_TYPE_NAMES,
            ),
            ExportFormat("json", "recipe.json", "the recipe itself, with its provenance (JSON)", _json.write),
        )
    }
)

EXPORT_FORMATS = tuple(_FORMATS)


@dataclass(frozen=True)
class ExportResult:
    """One exported file: its text, a name to suggest for it, and what the target lost."""

    format: str
    text: str
    suggested_name: str
    warnings: list[str] = field(default_factory=list)


def format_names_text() -> str:
    """The formats for a person to read: "hf-trainer, llama-factory, axolotl or json"."""
    *rest, last = EXPORT_FORMATS
    return f"{', '.join(rest)} or {last}" if rest else last


def check_format(fmt: str) -> str:
    """The canonical format name, or a `ConfigError` naming `--format` with a suggestion."""
    canonical = fmt.strip().lower().replace("_", "-")
    if canonical in _FORMATS:
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
    entry = _FORMATS[check_format(fmt)]
    warnings: list[str] = []
    text = entry.write(entry, recipe, study, warnings)
    return ExportResult(entry.name, text, entry.suggested_name, warnings)
