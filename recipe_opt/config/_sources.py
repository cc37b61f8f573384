"""Where a study's data comes from: new-data sources and old-data replay pools."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DATA_FIELDS", "DATA_FILE_SUFFIXES", "ReplayPoolConfig", "SourceConfig", "SourcesConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Our field names per data format; `columns:` maps them to a source's own column names.
DATA_FIELDS = ("prompt", "completion", "messages", "text")
DATA_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")


class SourceConfig(_Model):
    """A data source: a file (`path`, relative to `data_root`) or a `datasets` dataset."""

    path: str | None = Field(default=None, description="JSONL, JSON, Parquet or CSV file, relative to data_root.")
    dataset: str | None = Field(
        default=None, description="A `datasets` dataset name or local dataset directory (load_dataset)."
    )
    subset: str | None = Field(default=None, description="The dataset's configuration name, if it has several.")
    split: str = Field(default="train", description="The dataset split to read.")
    format: Literal["auto", "prompt_completion", "chat", "text"] = Field(
        default="auto",
        description="prompt/completion pairs, chat `messages` (loss on assistant turns), or plain `text`; "
        "auto: decided from the first row's fields.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="Our field name -> the source's column, e.g. {prompt: question}."
    )
    bad_rows: Literal["error", "skip"] = Field(
        default="error",
        description="error: stop at the first malformed row (file and line named); skip: leave malformed "
        "rows out, counted and reported.",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> SourceConfig:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of `path` (a file) or `dataset` (a `datasets` dataset)")
        if self.path is not None and not self.path.lower().endswith(DATA_FILE_SUFFIXES):
            raise ValueError(f"`path` must end in one of {', '.join(DATA_FILE_SUFFIXES)}, but got {self.path!r}")
        unknown = sorted(set(self.columns) - set(DATA_FIELDS))
        if unknown:
            raise ValueError(f"`columns` maps unknown field(s) {unknown}; ours are {list(DATA_FIELDS)}")
        return self


class ReplayPoolConfig(SourceConfig):
    """An old-data replay pool; pools split the recipe's replay share by `weight`."""

    weight: float = Field(default=1.0, gt=0)


class SourcesConfig(_Model):
    new: dict[str, SourceConfig] = Field(min_length=1, description="The update's new-data sources.")
    replay: dict[str, ReplayPoolConfig] = Field(default_factory=dict, description="Old-data replay pools.")

    @model_validator(mode="after")
    def _disjoint(self) -> SourcesConfig:
        clash = sorted(set(self.new) & set(self.replay))
        if clash:
            raise ValueError(f"names used both as new source and replay pool: {clash}")
        return self
