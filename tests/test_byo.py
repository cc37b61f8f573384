"""The held-out "bring your own model" world, run the way the README tells a user to: a GPT-2
checkpoint directory with its own byte-level BPE tokenizer and chat template, prompt/completion
and chat JSONL, local lm-eval tasks; search, then export the pick for LLaMA-Factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from recipe_opt.recipe import Recipe
from tests.conftest import REPO

pytestmark = pytest.mark.integration
EXAMPLE = REPO / "examples" / "byo-gpt2"


def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900)
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_a_users_gpt2_world_searches_and_exports(tmp_path: Path) -> None:
    # Fewer pre-training steps than the example's 800: the old skills are still learned.
    run(str(EXAMPLE / "make_world.py"), "--out", str(tmp_path / "world"), "--steps", "400")
    cfg = yaml.safe_load((EXAMPLE / "study.yaml").read_text())
    cfg["search_space"] = str(REPO / "search_spaces" / "default.yaml")
    cfg["trials"] = {"n_trials": 3}
    cfg["gates"] = {"max_forgetting": 0.5}  # three trials: any pick that keeps most old skills will do
    study_yaml = tmp_path / "study.yaml"
    study_yaml.write_text(yaml.safe_dump(cfg))

    r = run("-m", "recipe_opt", "search", str(study_yaml))
    assert "selected trial" in r.stdout
    study = optuna.load_study(study_name="byo-cycle-1", storage=f"sqlite:///{tmp_path / 'support-bot.db'}")
    data = study.user_attrs["data"]
    assert data["new/codes"]["format"] == "prompt_completion" and data["new/capitals"]["format"] == "chat"
    assert data["replay/old"] == {"format": "chat", "rows": 42, "bad_rows": 0, "bad_reasons": {}}
    # The space's markers became GPT-2's own module names.
    assert study.user_attrs["config"]["trust_remote_code"] is False
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    targets = {tuple(t.user_attrs["recipe"]["adapter"]["target_modules"]) for t in done}
    assert targets <= {("c_attn", "attn.c_proj"), ("c_attn", "c_proj", "c_fc")} and targets
    # Every suite scored something real on the base: the old skills known, the new ones not.
    base = study.user_attrs["base_evaluation"]["suites"]
    assert base["capitals"] >= 0.8 and base["new_skills"] <= 0.2, base

    recipe = Recipe.load(tmp_path / "reports" / "byo-cycle-1" / "recipe.yaml")
    out = tmp_path / "lf.yaml"
    run("-m", "recipe_opt", "export", str(study_yaml), "--format", "llama-factory", "--out", str(out))
    exported = yaml.safe_load(out.read_text())
    assert exported["lora_target"] == ",".join(recipe.adapter.target_modules)
    assert exported["model_name_or_path"] == str(tmp_path / "world" / "model")
    assert sorted(exported["dataset"].split(",")) == ["capitals", "codes", "old"]
    assert abs(sum(float(p) for p in str(exported["interleave_probs"]).split(",")) - 1.0) < 1e-6
