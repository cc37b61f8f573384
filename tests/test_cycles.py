"""Two update cycles end to end, as a user runs them: v0 -> v1 -> v2 through search, apply and a
lineage warm start; a rejected release; rollback; the lineage and fidelity commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Recipe
from tests.conftest import REPO, write_study

pytestmark = pytest.mark.integration

# Short updates keep the full-fidelity runs to seconds: 100-200 steps, proxies of 10-20.
SPACE = (
    (REPO / "search_spaces" / "default.yaml")
    .read_text()
    .replace("steps: {type: int, low: 200, high: 1000, step: 50}", "steps: {type: int, low: 100, high: 200, step: 50}")
)
INFORMED = "{name: random, initial_design: informed}"


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
    )
    cfg["evaluation"]["new_task"] = {"name": "new_skills", "tasks": ["demo_max", "demo_mul_text"]}
    cfg["evaluation"]["retention"].append({"name": "cycle1_skills", "tasks": ["demo_mul", "demo_add_text"]})
    path = directory / "cycle2.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_cycles_with_apply_warm_start_and_rollback(tiny_world: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"  # the shared world stays untouched: new versions go here
    extra = f"apply: {{version: v1, weights_dir: {models}}}"
    gates = "{max_forgetting: 0.3}"
    c1 = write_study(
        tmp_path, tiny_world, name="c1", n_trials=3, space=SPACE, sampler=INFORMED, gates=gates, extra=extra
    )
    cli("search", str(c1))
    db = f"sqlite:///{tmp_path / 'demo.db'}"

    # Tightened release gates reject the update: registered as rejected, v0 stays current.
    strict = tmp_path / "strict.yaml"
    strict.write_text(c1.read_text().replace(f"gates: {gates}", "gates: {max_forgetting: 0.3, min_gain: 5.0}"))
    r = cli("apply", str(strict), "--version", "v1-strict", code=1)
    assert "rejected demo/v1-strict" in r.stdout and "below the bound 5" in r.stdout
    with LineageStore(db) as store:
        assert store.get_version("demo/v1-strict").status == "rejected"
        assert store.current_version("demo").name == "v0"  # type: ignore[union-attr]

    r = cli("apply", str(c1))
    assert "released demo/v1" in r.stdout and "proxy vs full" in r.stdout
    v1_dir = models / "v1"
    assert {"config.json", "model.safetensors", "tokenizer.json", "recipe.yaml"} <= {p.name for p in v1_dir.iterdir()}
    assert (v1_dir / "adapter" / "adapter_config.json").is_file()
    assert not (models / "v1.partial").exists()
    study1 = optuna.load_study(study_name="c1", storage=db)
    selected = study1.trials[study1.user_attrs["selection"]["trial_number"]]
    assert Recipe.load(v1_dir / "recipe.yaml").content_hash == selected.user_attrs["recipe_hash"]
    with LineageStore(db) as store:
        v1 = store.get_version("demo/v1")
        assert (v1.parent, v1.status, v1.is_current) == ("v0", "released", True)
        assert {e.suite for e in v1.evaluations} == {"new_skills", "arithmetic", "strings", "knowledge"}
        checks = {c["gate"]: c for c in v1.decision.checks}  # type: ignore[union-attr]
        assert checks["regression:knowledge"]["bound"] == 0.3 and all(c["passed"] for c in checks.values())
    r = cli("apply", str(c1), code=2)  # the same version twice: refused before any training
    assert "already exists" in r.stderr

    # Cycle 2 starts from v1 and warm-starts from the cycle that produced it.
    c2 = cycle2_config(tmp_path, tiny_world, models)
    r = cli("search", str(c2), "--warm-start", "auto", "--warm-start-priors")
    assert "demo/v1 was produced by study 'c1'" in r.stdout
    assert "mixture set to equal weights" in r.stdout  # cycle 2 mixes other sources than cycle 1
    study2 = optuna.load_study(study_name="c2", storage=db)
    priors = [t for t in study2.trials if t.user_attrs.get("origin", "").startswith("prior")]
    # Enqueued recipes beyond the budget stay WAITING for a resumed run.
    own = [t for t in study2.trials if t not in priors and t.state.name != "WAITING"]
    # Cycle 1's three trials inform the sampler; the budget of three counts only this cycle's.
    assert len(priors) == 3 and [t.state.name for t in own] == ["COMPLETE"] * 3
    assert study2.user_attrs["selection"]["trial_number"] in {t.number for t in own}
    first = own[0]
    assert first.user_attrs["origin"] == f"warm start: c1 trial {selected.number} (selected)"
    for name in ("replay_ratio", "peak_lr", "lora_rank", "steps"):
        assert first.params[name] == selected.params[name]
    assert first.params["mix.max"] == 0.5  # equal weights over the new sources
    assert study2.user_attrs["base_evaluation"]["suites"]["cycle1_skills"] > 0  # v1 learned cycle 1

    cli("apply", str(c2))
    r = cli("lineage", "tree", "demo", "--storage", str(c2))
    lines = r.stdout.splitlines()
    depth = {n: next(i for i, ln in enumerate(lines) if f"{n} (" in ln) for n in ("v0", "v1", "v2", "v1-strict")}
    assert depth["v0"] < depth["v1"] < depth["v2"] and "via c2" in lines[depth["v2"]]
    assert "rejected" in lines[depth["v1-strict"]]
    r = cli("lineage", "show", "v2", "--storage", db)
    assert "parent v1" in r.stdout and "cycle2/max" in r.stdout and "release from c2" in r.stdout
    r = cli("fidelity", "demo", "--storage", db)
    assert "3 recipes" in r.stdout and "Spearman rho" in r.stdout

    r = cli("lineage", "rollback", "demo", "--storage", db)
    assert "v2 -> v1" in r.stdout
    r = cli("lineage", "list", "--storage", db)
    v1_row = next(ln for ln in r.stdout.splitlines() if "demo/v1 " in ln)
    assert "current" in v1_row
    r = cli("lineage", "show", "v9", "--storage", db, code=2)
    assert r.stderr.startswith("error: no model version 'v9'")


def test_register_a_foundation_release(tmp_path: Path, tiny_world: Path) -> None:
    db = f"sqlite:///{tmp_path / 'lineage.db'}"
    r = cli(
        "lineage",
        "register",
        "base-2026",
        "--family",
        "fm",
        "--weights",
        str(tiny_world / "models" / "v0"),
        "--storage",
        db,
    )
    assert "registered fm/base-2026 (foundation) as current" in r.stdout
    with LineageStore(db) as store:
        v = store.get_version("fm/base-2026")
        assert v.weights_checksum and len(v.weights_checksum) == 64
    r = cli("lineage", "register", "x", "--family", "fm", "--weights", str(tmp_path), "--storage", db, code=2)
    assert "not a checkpoint directory" in r.stderr
    r = cli("lineage", "list", "--storage", f"sqlite:///{tmp_path / 'none.db'}", code=2)
    assert "no database at" in r.stderr and not (tmp_path / "none.db").exists()
