"""The per-trial profile benchmark runs as its README command says and its figures add up.

The benchmark reads what the package records with every trial (`TrainResult` timings, the
objective's `sampling_seconds`, the runner's phase messages); a refactor that drops or renames one
breaks it silently unless it runs here. Small settings: figures, not speed, are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

SCRIPT = REPO / "bench" / "trial_profile.py"


def run_bench(*args: str) -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_cpu_profile_accounts_for_every_second_of_a_trial(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    run_bench("--trials", "2", "--world", str(tiny_world), "--out", str(out))
    d = json.loads(out.read_text())
    assert d["trials_complete"] == 2 and len(d["trials"]) == 2
    main = ("adapter_setup", "training", "evaluation", "bookkeeping")
    for t in d["trials"]:
        # The four phases partition the trial's wall time; bookkeeping is made of its parts.
        assert all(t[p] >= 0 for p in main), t
        assert sum(t[p] for p in main) == pytest.approx(t["total"], rel=1e-3)
        parts = [k for k in t if k.startswith("bookkeeping.")]
        assert len(parts) == 5 and all(t[k] >= 0 for k in parts), t
        assert sum(t[k] for k in parts) == pytest.approx(t["bookkeeping"], abs=0.01)
        assert t["training"] > t["bookkeeping"] and t["tokens"] > 0
    shares = d["per_trial"]
    assert sum(shares[p]["share"] for p in main) == pytest.approx(1.0, abs=0.01)
    assert 0 < d["share_neither_training_nor_evaluation"] < 0.5
    assert d["one_time"]["base_model_load_s"] > 0


def test_gpu_part_runs_recipe_opts_trainer_and_counts_flops(tmp_path: Path) -> None:
    """The GPU part's code path, on CPU with a tiny Qwen2 (no GPU on the test machines)."""
    out = tmp_path / "gpu.json"
    run_bench("--gpu-dry-run-cpu", "--out", str(out))
    d = json.loads(out.read_text())
    assert set(d["results"]) == {"proxy_trial", "reference_loop_bf16_base"}
    for r in d["results"].values():
        f = r["flops_per_token"]
        assert f["frozen_4N"] == 4 * r["frozen_non_embedding_params_N"]
        assert f["adapter_6n"] == 6 * r["adapter_params_n"]
        assert f["total"] == pytest.approx(f["frozen_4N"] + f["adapter_6n"] + f["attention_12Lsd"])
        assert r["tokens_per_second"] > 0 and r["timed_steps"] == 3
    trial = d["results"]["proxy_trial"]
    # The same adapter both ways: rank 16 on every linear projection of the same model.
    assert trial["adapter_params_n"] == d["results"]["reference_loop_bf16_base"]["adapter_params_n"]
    assert trial["trial_phases_s"]["adapter_setup"] > 0


def test_the_oracle_resumes_where_it_stopped(tiny_world: Path, tmp_path: Path) -> None:
    """bench/oracle.py, killed (here: stopped by --max-runs) and restarted, trains nothing twice."""
    space = tmp_path / "space.yaml"
    default = (REPO / "search_spaces" / "default.yaml").read_text()
    space.write_text(
        default.replace(
            "steps: {type: int, low: 200, high: 1000, step: 50}", "steps: {type: int, low: 20, high: 40, step: 10}"
        )
    )
    out = tmp_path / "oracle.json"
    args = [
        sys.executable, str(REPO / "bench" / "oracle.py"), "--world", str(tiny_world), "--space", str(space),
        "--n", "2", "--noise", "2", "--noise-seeds", "2", "--pick", str(tmp_path / "no-pick.yaml"), "--out", str(out),
    ]  # fmt: skip

    def oracle(*more: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*args, *more], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return r

    oracle("--max-runs", "3")
    first = json.loads(out.read_text())
    assert len(first["runs"]) == 3 and not first.get("complete")
    again = oracle()
    trained = [ln for ln in again.stdout.splitlines() if ln.startswith("[")]
    assert "(3 runs already in" in again.stdout and len(trained) == 10 - 3 + 2  # the rest, then two noise seeds
    d = json.loads(out.read_text())
    assert d["complete"] and len(d["recipes"]) == 10  # 2 Sobol points and the 8 informed-design recipes
    assert all(d["runs"][k] == v for k, v in first["runs"].items())  # the first three were not trained again
    assert len(d["runs"]) == 12 and d["noise"]["n_recipes"] == 2  # two recipes, each with a second seed
    for run in d["runs"].values():
        assert set(run["forgetting_per_suite"]) == {"arithmetic", "strings", "knowledge"}
        assert run["tflop"] > 0 and isinstance(run["passes_gates"], bool) and run["tasks_after"]
    assert d["noise"]["gain_sd"] >= 0 and d["setup"]["sobol"]["dimensions"] == 9
    # Runs of another base model (a demo world built on another CPU) are refused, not mixed in.
    d["base_sha256"] = "0" * 64
    out.write_text(json.dumps(d))
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "pass --restart to measure afresh" in r.stderr and "000000000000" in r.stderr
    assert json.loads(out.read_text()) == d  # left as it was
