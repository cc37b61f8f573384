"""Flows that several test modules read: two real update cycles through the CLI, run once per
session (about 80 s on 2 cores). Registered as a fixture by tests/conftest.py."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, write_study

# Short updates keep the full-fidelity runs to seconds: 100-200 steps, proxies of 10-20.
SPACE = (
    (REPO / "search_spaces" / "default.yaml")
    .read_text()
    .replace("steps: {type: int, low: 200, high: 1000, step: 50}", "steps: {type: int, low: 100, high: 200, step: 50}")
)
INFORMED = "{name: random, initial_design: informed}"
# Every plot of a study report with enough trials (div ids), as `write_report` names them.
STUDY_REPORT_PLOTS = (
    "pareto-front",
    "retention",
    "history",
    "front-3d",
    "importance-gain",
    "importance-forgetting",
    "slice-replay_ratio-forgetting",
    "slice-lora_rank-cost",
    "slice-peak_lr-gain",
    "parallel",
)


def cli(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "recipe_opt", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r


def cycle2_config(directory: Path, world: Path, models: Path) -> Path:
    cfg = yaml.safe_load((directory / "study.yaml").read_text())
    cfg.update(
        name="c2",
        base_version="v1",
        base_model=str(models / "v1"),
        sources={
            "new": {"max": {"path": "cycle2/max.jsonl"}, "mul_text": {"path": "cycle2/mul_text.jsonl"}},
            "replay": {
                "old": {"path": "replay/old.jsonl", "weight": 4.0},
                "mul": {"path": "cycle1/mul.jsonl"},
                "add_text": {"path": "cycle1/add_text.jsonl"},
            },
        },
        apply={"version": "v2", "weights_dir": str(models)},
        output_dir="out2",
        trials={"n_trials": 4},  # four: the report's importance views need four trials of the cycle's own
        # Trained beside the pick by `apply`: the recipe that made v1 (cycle 1's pick) and a default.
        baselines=["current", "litgpt"],
    )
    cfg["evaluation"]["new_task"] = {"name": "new_skills", "tasks": ["demo_max", "demo_mul_text"]}
    cfg["evaluation"]["retention"].append({"name": "cycle1_skills", "tasks": ["demo_mul", "demo_add_text"]})
    path = directory / "cycle2.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass
class TwoCycles:
    """What the flow left behind: its directory, database and the output of each CLI step."""

    tmp: Path
    models: Path
    db: str
    c1: Path
    c2: Path
    out: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    after_reject: tuple[str, str] = ("", "")  # (status of v1-strict, current version) right after


@pytest.fixture(scope="session")
def two_cycles(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> TwoCycles:
    """v0 -> v1 (after a rejected attempt) -> v2, with a lineage warm start in cycle 2."""
    from recipe_opt.lineage import LineageStore

    tmp = tmp_path_factory.mktemp("cycles")
    models = tmp / "models"  # the shared world stays untouched: new versions go here
    # Loose where the tiny world differs by CPU: this flow tests the mechanics of two cycles
    # (select, reject, release, warm start), not learning; the gates themselves are tested in
    # tests/test_gates.py. On one machine's tiny v0 the 10-20-step proxies gained 0.000 and
    # dropped arithmetic by 0.68-0.83, leaving nothing to select under the old `max_forgetting: 0.3`.
    gates = "{max_forgetting: 0.3, min_gain: -1.0, max_forgetting_per_suite: {arithmetic: 1.0}}"
    c1 = write_study(
        tmp,
        tiny_world,
        name="c1",
        n_trials=3,
        space=SPACE,
        sampler=INFORMED,
        gates=gates,
        extra=f"apply: {{version: v1, weights_dir: {models}}}",
    )
    run = TwoCycles(tmp, models, f"sqlite:///{tmp / 'demo.db'}", c1, tmp / "cycle2.yaml")
    run.out["search-c1"] = cli("search", str(c1))
    # Tightened release gates reject the update.
    strict = tmp / "strict.yaml"
    strict.write_text(c1.read_text().replace(f"gates: {gates}", "gates: {max_forgetting: 0.3, min_gain: 5.0}"))
    run.out["apply-strict"] = cli("apply", str(strict), "--version", "v1-strict", code=1)
    with LineageStore(run.db) as store:
        current = store.current_version("demo")
        run.after_reject = (store.get_version("demo/v1-strict").status, current.name if current else "")
    # Cycle 2's config is written first, as a team prepares the next cycle: `apply` names it.
    assert cycle2_config(tmp, tiny_world, models) == run.c2
    run.out["apply-c1"] = cli("apply", str(c1))
    run.out["apply-c1-again"] = cli("apply", str(c1), code=2)  # the same version twice
    # Cycle 2 starts from v1 and warm-starts from the cycle that produced it.
    run.out["search-c2"] = cli("search", str(run.c2), "--warm-start", "auto", "--warm-start-priors")
    run.out["apply-c2"] = cli("apply", str(run.c2))
    return run
