"""Where the base model comes from: a directory, a lineage reference, or a hub id."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_opt.config import load_study_config
from recipe_opt.exceptions import ConfigError
from recipe_opt.lineage import LineageStore
from recipe_opt.study import resolve_base_model
from tests.conftest import write_study


def _config(tmp_path: Path, base_model: str):  # type: ignore[no-untyped-def]
    world = tmp_path / "world"
    (world / "models" / "v0").mkdir(parents=True)
    (world / "models" / "v0" / "config.json").write_text("{}")
    for f in ("cycle1/mul.jsonl", "cycle1/add_text.jsonl", "replay/old.jsonl"):
        (world / "data" / f).parent.mkdir(parents=True, exist_ok=True)
        (world / "data" / f).write_text('{"prompt": "1 + 1 =", "completion": " 2"}\n')
    path = write_study(tmp_path / "s", world)
    path.write_text(path.read_text().replace(f"base_model: {world}/models/v0", f"base_model: {base_model}"))
    return load_study_config(path), world


def test_a_directory_stays_a_directory(tmp_path: Path) -> None:
    # Shaped like a hub id (org/name), but a directory beside the config: a directory wins.
    (tmp_path / "s" / "org" / "model").mkdir(parents=True)
    cfg, _ = _config(tmp_path, "org/model")
    assert cfg.base_model_kind == "dir" and resolve_base_model(cfg) is cfg


def test_a_lineage_reference_takes_the_versions_weights(tmp_path: Path) -> None:
    cfg, world = _config(tmp_path, "lineage")
    assert cfg.base_model_kind == "lineage"
    with pytest.raises(ConfigError, match=r"base_model: 'lineage': no lineage store at .*demo\.db"):
        resolve_base_model(cfg)
    with LineageStore(cfg.storage_url) as store:
        store.ensure_version("demo", "v0", weights_uri=str(world / "models" / "v0"))
    assert resolve_base_model(cfg).base_model_path == world / "models" / "v0"
    other = cfg.model_copy(update={"base_model": "lineage:v9"})
    with pytest.raises(ConfigError, match=r"'lineage:v9': no model version 'demo/v9' .*did you mean 'demo/v0'"):
        resolve_base_model(other)


def test_a_hub_id_is_fetched_or_refused_in_one_line(tmp_path: Path) -> None:
    cfg, _ = _config(tmp_path, "no-such-org/no-such-model")
    assert cfg.base_model_kind == "hub"
    # The tests run with HF_HUB_OFFLINE=1: nothing is in the cache, so the hub cannot be asked.
    with pytest.raises(ConfigError) as info:
        resolve_base_model(cfg)
    message = str(info.value)
    assert "base_model: 'no-such-org/no-such-model' is not a directory" in message
    assert "cannot be fetched from the Hugging Face hub" in message and "\n" not in message
