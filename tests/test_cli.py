"""The command line as users run it: fast help, one line per bad input, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, write_study


def run(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_opt", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_help_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from recipe_opt.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0 and 'search' in r.output, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'lm_eval') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_shipped_files() -> None:
    r = run("validate", str(REPO / "search_spaces" / "default.yaml"))
    assert r.returncode == 0, r.stderr
    assert "simplex" in r.stdout and "lora_rank" in r.stdout


def test_validate_reports_every_problem_of_every_file(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "replay_ratio: {type: float, low: 0.5, high: 0.1}\npeak_lr: 1e-3\nlora_rank: 8\nsteps: 100\nfoo: 1\n"
    )
    study = tmp_path / "study.yaml"
    study.write_text("name: x\n")
    r = run("validate", str(space), str(study))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert any(f"{space}: replay_ratio:" in ln and "(low=0.5, high=0.1)" in ln for ln in lines), lines
    assert any(f"{space}: foo: unknown key" in ln for ln in lines), lines
    assert any(f"{study}: base_model: required field is missing" in ln for ln in lines), lines
    assert not any("Traceback" in ln for ln in lines)


def test_validate_reads_every_data_file(tmp_path: Path, tiny_world: Path) -> None:
    import shutil

    world = tmp_path / "w"
    shutil.copytree(tiny_world / "models" / "v0", world / "models" / "v0")  # validate loads the model
    # and, to measure a proxy step once the sources read, builds the evaluators on their items.
    shutil.copytree(tiny_world / "data" / "eval", world / "data" / "eval")
    for f, text in (
        ("cycle1/mul.jsonl", '{"prompt": "1 * 1 =", "completion": " 1"}\n{"prompt": "2 * 1 ="}\n'),
        ("cycle1/add_text.jsonl", '{"prompt": "sum of 1 and 1 is", "completion": " 2"}\n'),
        ("replay/old.jsonl", "{not json\n"),
    ):
        (world / "data" / f).parent.mkdir(parents=True, exist_ok=True)
        (world / "data" / f).write_text(text)
    study = write_study(tmp_path / "s", world)
    r = run("validate", str(study))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    # Both bad sources at once, each with its file and line; the good one is not mentioned.
    assert any("sources.new.mul:" in ln and "mul.jsonl:2: missing field(s) ['completion']" in ln for ln in lines)
    assert any("sources.replay.old:" in ln and "old.jsonl:1: not valid JSON" in ln for ln in lines), lines
    assert not any("add_text" in ln for ln in lines)
    # With `bad_rows: skip` the bad row is counted, not fatal.
    study.write_text(
        study.read_text().replace("mul: {path: cycle1/mul.jsonl}", "mul: {path: cycle1/mul.jsonl, bad_rows: skip}")
    )
    (world / "data" / "replay" / "old.jsonl").write_text('{"prompt": "a", "completion": " b"}\n')
    r = run("validate", str(study))
    assert r.returncode == 0, r.stderr
    assert "sources.new.mul: prompt/completion, 2 rows, 1 left out: 1 x missing field(s) ['completion']" in r.stdout


BAD_CASES = {
    "inverted range in the space": ("space", "lora_rank: {type: int, low: 64, high: 8}", "space.yaml: lora_rank:"),
    "unknown key in the space": ("space", "lora_rnak: 8", "space.yaml: lora_rnak: unknown key"),
    "wrong type in the study": ("study", "seed: many", "study.yaml: seed:"),
    "unknown key in the study": ("study", "n_trials: 4", "study.yaml: n_trials: unknown key"),
    "unreachable storage": (
        "study",
        "storage: postgresql+psycopg2://u:s3cret@127.0.0.1:1/x",
        "cannot open",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES), ids=lambda c: c.replace(" ", "-"))
def test_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    where, text, needle = BAD_CASES[case]
    world = tmp_path / "no-world-needed"
    (world / "models" / "v0").mkdir(parents=True)
    (world / "models" / "v0" / "config.json").write_text("{}")
    (world / "data" / "cycle1").mkdir(parents=True)
    (world / "data" / "replay").mkdir(parents=True)
    for f in ("cycle1/mul.jsonl", "cycle1/add_text.jsonl", "replay/old.jsonl"):
        (world / "data" / f).write_text('{"prompt": "1 + 1 =", "completion": " 2"}\n')
    study_dir = tmp_path / "s"
    space = None
    if where == "space":
        data = yaml.safe_load((REPO / "search_spaces" / "default.yaml").read_text())
        data.update(yaml.safe_load(text))
        space = yaml.safe_dump(data)
    cfg = write_study(study_dir, world, space=space, extra=text if where == "study" else "")
    before = sorted(p.name for p in study_dir.iterdir())
    r = run("search", str(cfg))
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert errors and all(ln.startswith("error:") for ln in errors), r.stderr
    assert any(needle in ln for ln in errors), errors
    assert "s3cret" not in r.stderr + r.stdout
    assert sorted(p.name for p in study_dir.iterdir()) == before  # no database, no report, no recipe


def test_dashboard_serves_the_study_storage(tmp_path: Path) -> None:
    import json
    import socket
    import time
    import urllib.request

    import optuna

    from recipe_opt.config import load_study_config

    cfg_path = write_study(tmp_path, tmp_path / "world", name="dash")
    optuna.create_study(study_name="dash", storage=load_study_config(cfg_path, check_paths=False).storage_url)
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recipe_opt", "dashboard", str(cfg_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer within 60 s"
        assert [s["study_name"] for s in body["study_summaries"]] == ["dash"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    r = run("dashboard", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and r.stderr.startswith("error:")
