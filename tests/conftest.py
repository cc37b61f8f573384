"""Shared fixtures. The tiny world is built once per test session (real pre-training, ~15 s)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo world with a shorter pre-training; its base still knows every old task."""
    import torch

    from recipe_opt.demo import DemoWorldConfig, build_world

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("world") / "w"
    build_world(root, DemoWorldConfig(seed=0, pretrain_steps=TINY_PRETRAIN_STEPS))
    return root


# Fewer steps than the demo's 1000, still enough for >= 0.9 exact match on every old task.
TINY_PRETRAIN_STEPS = 600


def write_study(
    directory: Path,
    world: Path,
    *,
    name: str = "t",
    n_trials: int = 3,
    backend: str = "native",
    extra: str = "",
    space: str | None = None,
    sampler: str = "{name: random, initial_design: none}",
    gates: str = "{max_forgetting: null}",
) -> Path:
    """A study config for `world`, written the way the README tells users to."""
    directory.mkdir(parents=True, exist_ok=True)
    # A top-level key in `extra` replaces the template's (a YAML key given twice is an error).
    overridden = {line.split(":", 1)[0] for line in extra.splitlines() if line and not line[0].isspace()}
    space_path = directory / "space.yaml"
    space_path.write_text(space or (REPO / "search_spaces" / "default.yaml").read_text())
    cfg = directory / "study.yaml"
    cfg.write_text(
        f"""
name: {name}
family: demo
base_version: v0
base_model: {world}/models/v0
data_root: {world}/data
sources:
  new:
    mul: {{path: cycle1/mul.jsonl}}
    add_text: {{path: cycle1/add_text.jsonl}}
  replay:
    old: {{path: replay/old.jsonl}}
search_space: space.yaml
evaluation:
  backend: {backend}
  tasks_dir: {REPO}/evaluators/demo
  new_task: {{name: new_skills, tasks: [demo_mul, demo_add_text]}}
  retention:
    - {{name: arithmetic, tasks: [demo_add]}}
    - {{name: strings, tasks: [demo_rev, demo_copy]}}
    - {{name: knowledge, tasks: [demo_lookup], weight: 2.0}}
proxy: {{fraction: 0.1, batch_size: 16, max_seq_len: 32, device: cpu}}
trials: {{n_trials: {n_trials}}}
sampler: {sampler}
gates: {gates}
seed: 0
output_dir: out
{extra}
"""
    )
    if overridden:
        lines = cfg.read_text().splitlines()
        first = len(lines) - len(extra.splitlines())  # where `extra` starts
        kept = [ln for i, ln in enumerate(lines) if i >= first or ln.split(":", 1)[0] not in overridden]
        cfg.write_text("\n".join(kept) + "\n")
    return cfg


@pytest.fixture
def clean_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


PG_URL = os.environ.get("RECIPE_OPT_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _postgres_url() -> Iterator[str]:
    """A fresh schema per test run, so runs never collide; dropped afterwards."""
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as exc:  # no server, no driver
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as c:
        c.execute(sa.text(f'create schema "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as c:
            c.execute(sa.text(f'drop schema "{schema}" cascade'))
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (workers need a server database); skips locally, fails in CI."""
    yield from _postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
    else:
        yield from _postgres_url()


from tests.flows import two_cycles  # noqa: E402  (the two-cycle flow, shared by several modules)

__all__ = ["two_cycles"]
