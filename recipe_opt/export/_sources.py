"""The recipe's data sources as the target tools see them: each one's share of every batch, where
it lives and how it reads.

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

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_opt.data import parse_rows, read_rows, source_shares
from recipe_opt.exceptions import ConfigError, RecipeOptError

if TYPE_CHECKING:
    from recipe_opt.config import SourceConfig, StudyConfig
    from recipe_opt.recipe import Recipe

# Our field names per data format (as in recipe_opt.data); a source's `columns` maps them.
FIELDS = {"prompt_completion": ("prompt", "completion"), "chat": ("messages",), "text": ("text",)}
# load_dataset builder per data file suffix (axolotl's ds_type, the hf-trainer loader).
_LOADERS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}

PLACEHOLDER_BASE_MODEL = "PATH/TO/BASE_MODEL"
_PLACEHOLDER_REPLAY = ("replay", "replay_pool", "replay_data")
DIGITS = 10  # probabilities are rounded for reading; the sum stays within 1e-9 of 1


@dataclass(frozen=True)
class Source:
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


def loader(path: str) -> str:
    """The `load_dataset` builder for a data file."""
    return _LOADERS.get(Path(path).suffix.lower(), "json")


def resolve(recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> tuple[list[Source], str]:
    """The sources to write and the base model path: the study's, or placeholders without one.

    Raises `ConfigError` for a recipe that does not fit the study.
    """
    sources = _sources(recipe, study, warnings)
    base_model = str(study.base_model_path) if study is not None else PLACEHOLDER_BASE_MODEL
    if study is not None:
        _check_paths_exist(study, sources, warnings)
    return sources, base_model


def shares_text(sources: list[Source]) -> str:
    return ", ".join(f"{s.name} {s.share:g}" for s in sources)


def _sources(recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> list[Source]:
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
            Source(name, "new" if name in new else "replay", round(share, DIGITS), name)
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
            Source(
                name,
                role,
                round(share, DIGITS),
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
    implied = [fmt for fmt, fields in FIELDS.items() if set(src.columns) & set(fields)]
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


def _check_paths_exist(study: StudyConfig, sources: list[Source], warnings: list[str]) -> None:
    missing = [s.path for s in sources if s.path is not None and not Path(s.path).is_file()]
    if not study.base_model_path.is_dir():
        missing.insert(0, str(study.base_model_path))
    if missing:
        warnings.append(f"not found (yet?): {', '.join(missing)}; the export names them anyway")
