"""The model a study updates: its weights (resolved from a lineage reference or the hub), the
data files it is trained on, and its search space's LoRA targets resolved against its architecture.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from recipe_opt.config import StudyConfig
from recipe_opt.exceptions import ConfigError, RecipeOptError, first_line
from recipe_opt.space import SearchSpace

__all__ = ["data_manifest", "file_sha256", "resolve_base_model", "resolve_space"]


def file_sha256(path: Any, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_base_model(cfg: StudyConfig, *, migrate: bool = True) -> StudyConfig:
    """`cfg` with `base_model` as a local checkpoint directory.

    `lineage` (or `lineage:VERSION`) takes the weights location the lineage store records for
    `base_version` (or VERSION) of the study's family; a hub id (`org/name`, not a directory) is
    downloaded into the Hugging Face cache (the config, tokenizer and weight files only). Either
    failing is a `ConfigError` naming `base_model`, before anything is written. Workers pass
    `migrate=False`: they read the lineage store, and only `prepare` creates or migrates it.
    """
    source = str(cfg.config_path or "<study>")
    kind = cfg.base_model_kind
    if kind == "dir":
        return cfg
    if kind == "lineage":
        from recipe_opt.lineage import LineageStore

        ref = cfg.base_model.removeprefix("lineage").removeprefix(":") or cfg.base_version
        db = cfg.database
        if not db.exists():
            raise ConfigError.single(source, "base_model", f"{cfg.base_model!r}: no lineage store at {db.sqlite_path}")
        try:
            with LineageStore(db.url, migrate=migrate) as store:
                version = store.get_version(ref, family=cfg.family)
        except RecipeOptError as exc:
            raise ConfigError.single(source, "base_model", f"{cfg.base_model!r}: {exc}") from None
        path = Path(version.weights_uri)
        if not (path / "config.json").is_file():
            raise ConfigError.single(
                source, "base_model", f"lineage version {version.ref} has its weights at {path}: not a checkpoint here"
            )
        return cfg.model_copy(update={"base_model": str(path)})
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
        if cfg.trust_remote_code:
            patterns.append("*.py")  # the architecture's own code, only when the config allows running it
        local = snapshot_download(cfg.base_model, allow_patterns=patterns)
    except Exception as exc:  # offline, unknown repo, gated model: one line with the hub's reason
        first = first_line(exc)
        raise ConfigError.single(
            source,
            "base_model",
            f"{cfg.base_model!r} is not a directory ({cfg.base_model_path}) and cannot be fetched from the "
            f"Hugging Face hub: {first}",
        ) from None
    update: dict[str, Any] = {"base_model": local}
    if cfg.apply.weights_dir is None:
        # Never beside the base (that is the hub cache): new versions go to models/ beside the config.
        update["apply"] = cfg.apply.model_copy(update={"weights_dir": str(cfg.base_dir / "models")})
    return cfg.model_copy(update=update)


def data_manifest(cfg: StudyConfig) -> dict[str, dict[str, str]]:
    """Path and sha256 of every data file (for a `datasets` source: its name, subset and split):
    what the lineage records the cycle was run on."""
    out: dict[str, dict[str, str]] = {}
    for group in ("new", "replay"):
        for name, src in getattr(cfg.sources, group).items():
            file = cfg.source_path(src)
            if file is not None:
                out[f"{group}/{name}"] = {"path": str(file), "sha256": file_sha256(file)}
            else:
                out[f"{group}/{name}"] = {"dataset": str(src.dataset), "subset": str(src.subset), "split": src.split}
    return out


def resolve_space(cfg: StudyConfig, space: SearchSpace) -> SearchSpace:
    """`space` with its target-module sets resolved against the base model's architecture.

    Markers (`all-linear`, `@attention`) become the model's own module names and concrete names
    are checked, before anything is written; every recipe, fingerprint, warm start and lineage
    record then sees concrete names. Only the architecture is needed: the model is built from its
    config.json on torch's meta device (no weights read), after its tokenizer, so a broken
    checkpoint is named part by part as the full load would name it.
    """
    from recipe_opt.train import load_tokenizer, model_skeleton, resolve_target_sets

    path = cfg.base_model_path
    load_tokenizer(path, trust_remote_code=cfg.trust_remote_code)
    model = model_skeleton(path, trust_remote_code=cfg.trust_remote_code)
    model_type = getattr(model.config, "model_type", "?")
    return space.with_target_sets(
        resolve_target_sets(
            model,
            space.spec.target_module_sets,
            source=space.source_file,
            model_ref=f"the {model_type} model at {path}",
        )
    )
