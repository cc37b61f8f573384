"""The failures a new user hit: lost or half-written work, errors that were not one line, output
that misled. Each test failed before its fix."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO, write_study


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_opt", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def _wait_for(predicate, timeout: float = 240.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _running(url: str, name: str, number: int) -> bool:
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except Exception:  # not created yet
        return False
    return any(t.number == number and t.state.name == "RUNNING" for t in study.trials)


# ---- lost or half-written work ----------------------------------------------------------------
@pytest.mark.integration
def test_a_second_search_on_a_sqlite_study_is_refused_and_a_killed_one_leaves_no_lock(
    tiny_world: Path, tmp_path: Path
) -> None:
    # Twelve trials: the first run is still at them when the second has loaded its model.
    cfg = write_study(tmp_path, tiny_world, name="two", n_trials=12)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    first = subprocess.Popen(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _running(url, "two", 0))
        second = cli("search", str(cfg))
        assert second.returncode == 1, second.stdout + second.stderr
        errors = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(errors) == 1 and "is running a study in this database" in errors[0], second.stderr
        assert f"pid {first.pid}" in errors[0] and "Traceback" not in second.stdout + second.stderr
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out + err
    study = optuna.load_study(study_name="two", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 12  # the first run lost nothing

    # Killed outright while holding the lock: the operating system releases it with the process.
    third = subprocess.Popen([sys.executable, "-m", "recipe_opt", "search", str(cfg), "--n-trials", "14"])
    _wait_for(lambda: _running(url, "two", 12))
    third.send_signal(signal.SIGKILL)
    third.wait()
    resumed = cli("search", str(cfg), "--n-trials", "14")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming study 'two' at 12 finished trials" in resumed.stdout


@pytest.mark.integration
def test_a_killed_trials_recipe_runs_before_recipes_not_yet_started(tiny_world: Path, tmp_path: Path) -> None:
    # The informed design queues eight recipes; a budget of three measures only the first ones.
    cfg = write_study(
        tmp_path, tiny_world, name="requeue", n_trials=3, sampler="{name: random, initial_design: informed}"
    )
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    run = subprocess.Popen([sys.executable, "-m", "recipe_opt", "search", str(cfg)])
    _wait_for(lambda: _running(url, "requeue", 1))
    run.send_signal(signal.SIGKILL)
    run.wait()
    killed = optuna.load_study(study_name="requeue", storage=url).trials[1].params
    r = cli("search", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    study = optuna.load_study(study_name="requeue", storage=url)
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.datetime_start)
    assert len(complete) == 3 and study.trials[1].state.name == "FAIL"
    # The retry ran next (the resumed run's first trial), not behind the six design recipes waiting.
    assert complete[1].params == killed and complete[1].system_attrs.get("failed_trial") == 1


@pytest.mark.integration
def test_when_no_trial_passes_the_report_says_so_with_the_closest_trials(tiny_world: Path, tmp_path: Path) -> None:
    cfg = write_study(tmp_path, tiny_world, name="none", n_trials=2, gates="{max_forgetting: null, min_gain: 5.0}")
    r = cli("search", str(cfg))
    assert r.returncode == 1 and "no recipe passes the release gates" in r.stderr, r.stdout + r.stderr
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'id="no-pick"' in page and "No recipe passes the release gates" in page
    assert "min_gain: new-task gain" in page  # the gate each of the closest trials missed
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "**Nothing selected:**" in summary and "| min_gain: new-task gain" in summary.replace("\\|", "|")


# The end of a search killed after its lineage rows are written but before they commit: the
# process dies inside the transaction, as a power cut or the OOM killer would stop it.
_KILL_IN_THE_END_OF_SEARCH = """
import os, signal, sys
from recipe_opt.lineage import LineageStore
from recipe_opt.cli import main

written = LineageStore.record_selection
def record_then_die(self, *args, **kwargs):
    written(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
LineageStore.record_selection = record_then_die
sys.argv = ["recipe-opt", "search", sys.argv[1]]
main()
"""


@pytest.mark.integration
def test_a_kill_during_the_end_of_search_leaves_all_of_its_writes_or_none(tiny_world: Path, tmp_path: Path) -> None:
    import sqlalchemy as sa

    cfg = write_study(tmp_path, tiny_world, name="endkill", n_trials=2)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_IN_THE_END_OF_SEARCH, str(cfg)], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    def written() -> tuple[int, int, bool, bool]:
        engine = sa.create_engine(url)
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT count(*) FROM lineage_selections")).scalar_one()
            versions = c.execute(sa.text("SELECT count(*) FROM lineage_model_versions")).scalar_one()
        engine.dispose()
        attr = "selection" in optuna.load_study(study_name="endkill", storage=url).user_attrs
        return rows, versions, attr, (tmp_path / "out" / "recipe.yaml").exists()

    assert written() == (0, 0, False, False)  # none of them
    r = cli("report", str(cfg))  # a study without a selection still reports, in one line if at all
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    again = cli("search", str(cfg))  # the trials are done: the resumed search only selects
    assert again.returncode == 0, again.stdout + again.stderr
    assert written() == (1, 1, True, True)  # all of them
    trials = optuna.load_study(study_name="endkill", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]


def test_the_selection_attribute_commits_with_the_lineage_rows(tiny_world: Path, tmp_path: Path, url: str) -> None:
    import sqlalchemy as sa

    from recipe_opt.config import load_study_config
    from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
    from recipe_opt.study import SelectedRecipe, record_selection

    cfg = load_study_config(write_study(tmp_path, tiny_world, name="atomic", extra=f'storage: "{url}"'))
    study = optuna.create_study(study_name="atomic", storage=url, directions=["maximize", "minimize", "minimize"])
    recipe = Recipe(
        Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
        Replay(0.2),
        Schedule(1e-3, 0.0, "cosine"),
        Adapter(8, 2.0, ("q_proj", "v_proj")),
        Budget(100, 16),
    )
    selected = SelectedRecipe(0, recipe, {"gain": 0.3, "forgetting": 0.0, "cost": 0.1}, "rule", "why", "knee", {})
    from recipe_opt.lineage import LineageStore
    from recipe_opt.study._storage import set_study_attr_in

    with LineageStore(url) as store:  # the attribute is written inside the lineage's transaction
        with pytest.raises(RuntimeError), store.session() as session:
            assert set_study_attr_in(session, study, "probe", {"a": 1})
            raise RuntimeError("interrupted before the commit")
        assert "probe" not in study.user_attrs
        with store.session() as session:
            set_study_attr_in(session, study, "probe", {"a": 1})
        assert study.user_attrs["probe"] == {"a": 1}

    (tmp_path / "out").write_text("a file where the output directory should be")  # the last write fails

    def rows() -> int:
        engine = sa.create_engine(url)
        with engine.connect() as c:
            n = c.execute(sa.text("SELECT count(*) FROM lineage_selections")).scalar_one()
        engine.dispose()
        return int(n)

    with pytest.raises(OSError):
        record_selection(cfg, study, {}, selected)
    assert rows() == 0 and "selection" not in study.user_attrs  # rolled back with the file
    (tmp_path / "out").unlink()
    path, _ = record_selection(cfg, study, {}, selected)
    assert rows() == 1 and path.is_file()
    assert study.user_attrs["selection"]["recipe_hash"] == recipe.content_hash  # in the same commit


# ---- errors that were not one line, or no error at all ----------------------------------------
def test_a_bom_at_the_start_of_a_data_file_is_read_as_utf8(tmp_path: Path) -> None:
    from recipe_opt.data import parse_rows, read_rows

    rows = '{"prompt": "1 + 1 =", "completion": " 2"}\n{"prompt": "2 + 2 =", "completion": " 4"}\n'
    for suffix, text in ((".jsonl", rows), (".json", json.dumps([json.loads(r) for r in rows.splitlines()]))):
        path = tmp_path / f"bom{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Excel and many Windows tools write
        parsed = parse_rows("bom", read_rows(path), format="auto", columns={}, bad_rows="skip")
        assert parsed.rows == 2 and parsed.bad.total == 0, parsed.bad.summary()
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfprompt,completion\n1 + 1 =, 2\n")
    assert parse_rows("c", read_rows(csv), format="auto", columns={}, bad_rows="error").rows == 1


def test_a_duplicate_key_is_refused_by_validate_too(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text((REPO / "search_spaces" / "default.yaml").read_text() + "\npeak_lr: 1.0e-3\n")
    r = cli("validate", str(space))
    assert r.returncode == 2 and r.stderr.startswith(f"error: {space}: duplicate key 'peak_lr': on line ")


@pytest.mark.integration
def test_the_projected_cost_of_a_trial_is_what_the_trial_then_spends(tiny_world: Path, tmp_path: Path) -> None:
    from recipe_opt.config import load_study_config
    from recipe_opt.space import load_search_space
    from recipe_opt.study import StudyRunner
    from recipe_opt.study._projection import _Corner
    from recipe_opt.train import flops_per_token, lora_params

    cfg = load_study_config(write_study(tmp_path, tiny_world))
    runner = StudyRunner(cfg, load_search_space(cfg.search_space_path, list(cfg.sources.new)))
    projection = runner.check_projection(timeout=None, max_cost=None)
    sets, model = runner.space.spec.target_module_sets, runner.setup.base.model
    corner = projection.corner
    # The adapter count from the model's shapes is peft's own count.
    assert projection.probe.trainable_params == lora_params(model, corner["lora_rank"], sets[corner["target_modules"]])
    recipe = runner.space.sample(_Corner(sets, corner["target_modules"]), seed=cfg.seed)
    with runner.setup.trainer.train(recipe) as (_, result):
        pass
    assert result.proxy_steps == projection.proxy_steps[1] == 100  # 10% of 1000 steps
    # The same FLOP count; only the tokens per sequence differ (the probe saw the first 4 batches).
    assert result.proxy_flops / 1e12 == pytest.approx(projection.proxy_tflop[1], rel=0.15)
    assert result.full_update_flops / 1e12 == pytest.approx(projection.full_tflop[1], rel=0.15)
    # The cheapest end: 200 steps (20 proxy steps) at rank 2 on the attention layers only.
    n, low = projection.probe.frozen_params, 2 * lora_params(model, 1, sets["attention"])
    ratio = (20 / 100) * flops_per_token(n, low) / flops_per_token(n, projection.probe.trainable_params)
    assert projection.proxy_steps[0] == 20 and projection.proxy_tflop[0] == pytest.approx(
        projection.proxy_tflop[1] * ratio
    )
    r = cli("validate", str(tmp_path / "study.yaml"))
    assert r.returncode == 0 and "projected per trial, from a measured proxy step" in r.stdout, r.stdout + r.stderr
    assert "  proxy        20-100 steps, " in r.stdout


# ---- leaks and escaping -----------------------------------------------------------------------
def test_a_password_with_an_unencoded_at_is_masked_wherever_it_is_shown() -> None:
    from recipe_opt.config import StorageURL, masked_url

    url = "postgresql+psycopg2://user:pre@s3cr3t@db.internal:5432/studies"
    assert masked_url(url) == "postgresql+psycopg2://user:***@db.internal:5432/studies"
    db = StorageURL(url)
    assert "s3cr3t" not in str(db.problem()) and "%40" in str(db.problem())
    assert db.scrub('could not translate host name "pre@s3cr3t@db.internal"').count("s3cr3t") == 0


def _hostile_study() -> optuna.Study:
    from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule

    evil = '<img src=x onerror=alert(1)>"'
    study = optuna.create_study(study_name="md", directions=["maximize", "minimize", "minimize"])
    study.set_user_attr(
        "config",
        {
            "family": "fam",
            "base_version": "<b onmouseover=alert(2)>v0</b>",
            "gates": {"max_forgetting": 0.5},
            "evaluation": {"new_task": {"name": "new", "tasks": []}, "retention": [{"name": evil, "tasks": []}]},
        },
    )
    study.set_user_attr("base_evaluation", {"suites": {evil: 1.0, "new": 0.0}, "tasks": {}})
    r = Recipe(
        Mixture.from_mapping({"<script>alert(3)</script>": 1.0}),
        Replay(0.1),
        Schedule(1e-3, 0.1, "cosine"),
        Adapter(8, 2.0, ("q_proj",)),
        Budget(100, 8),
    )
    metrics = {"gain": 0.5, "forgetting": 0.0, "cost": 1.0, "forgetting_per_suite": {evil: 0.0}, "suites_after": {}}
    study.add_trial(
        optuna.trial.create_trial(values=[0.5, 0.0, 1.0], user_attrs={"recipe": r.to_dict(), "metrics": metrics})
    )
    study.set_user_attr("selection", {"trial_number": 0, "policy": "gain-within-gates", "reason": evil})
    return study


def test_summary_md_shows_user_strings_as_text_in_a_renderer_that_allows_html(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    from recipe_opt.report import write_report

    write_report(_hostile_study(), tmp_path)
    rendered = MarkdownIt("commonmark", {"html": True}).render((tmp_path / "summary.md").read_text())
    for tag in ("<img", "<script", "<b "):
        assert tag not in rendered, tag  # as text (&lt;img ...), never as an element
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered


def test_a_retention_label_is_escaped_once(tmp_path: Path) -> None:
    from recipe_opt.report import _figures
    from recipe_opt.study import StudyRecord

    fig = _figures.retention_bars(StudyRecord.read(_hostile_study()), 0, None)
    labels = list(fig.data[0].x)
    assert '&lt;img src=x onerror=alert(1)&gt;"' in labels  # `<` escaped for plotly; the quote shown as is


# ---- speed traps and what the docs did not say -------------------------------------------------
def test_threads_respect_omp_num_threads_and_the_busy_cores() -> None:
    from recipe_opt.cli._app import thread_count

    assert thread_count("3", 2, 0) == 3  # OMP_NUM_THREADS wins
    assert thread_count(None, 2, 0) == 2
    assert thread_count(None, 2, 1) == 1  # another job holds a core
    assert thread_count(None, 2, 5) == 1
    assert thread_count("x", 4, 1) == 3
    hard_coded = [
        p for p in (REPO / "recipe_opt").rglob("*.py") if "set_num_threads(max(1, os.cpu_count()" in p.read_text()
    ]
    assert hard_coded == []


def test_a_relative_storage_on_the_command_line_is_the_current_directorys(tmp_path: Path) -> None:
    cfg = write_study(tmp_path / "configs", tmp_path / "world", name="rel")
    here = tmp_path / "elsewhere"
    here.mkdir()
    r = cli("report", str(cfg), "--storage", "sqlite:///mine.db", cwd=here)
    assert r.returncode == 2 and f"no study database at {here / 'mine.db'}" in r.stderr, r.stderr


def test_the_task_template_loads_as_a_task(tmp_path: Path) -> None:
    from recipe_opt.evaluate import load_task

    task = load_task(REPO / "evaluators" / "template" / "my_skill.yaml", tmp_path)
    assert task.name == "my_skill" and task.data_file == (tmp_path / "eval" / "my_skill.jsonl").resolve()
    assert ("acc", True) in task.metrics


# ---- output that misled --------------------------------------------------------------------------
def test_a_rank_correlation_of_few_recipes_says_it_is_too_few() -> None:
    from recipe_opt.study._fidelity import FidelityReport, rho_interval

    rep = FidelityReport("f", [], {"gain": 1.0}, n={"gain": 3}, interval={"gain": None})
    assert rep.describe("gain") == "+1.00 (n = 3: too few to judge, needs 5)"
    low, high = rho_interval(0.9, 10) or (0.0, 0.0)
    assert 0.5 < low < 0.9 < high < 1.0


@pytest.mark.integration
def test_progress_is_printed_when_output_is_not_a_terminal(tiny_world: Path, tmp_path: Path) -> None:
    cfg = write_study(tmp_path, tiny_world, name="plain", n_trials=1)
    r = cli("search", str(cfg), env={"RECIPE_OPT_PROGRESS_SECONDS": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  trial 0: step " in r.stdout and ", loss " in r.stdout
    assert "0 failed;" in r.stdout and "in this run" not in r.stdout  # no riddle about zero failures


@pytest.fixture
def read_only_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A directory on a filesystem mounted read-only, holding a study database written before."""
    where = tmp_path / "ro"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        import sqlite3

        with contextlib.closing(sqlite3.connect(where / "demo.db")) as db:  # a database from an earlier run
            db.execute("create table earlier (x integer)")
            db.commit()
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)  # lazily: gone even if still open


def test_a_study_database_on_a_read_only_filesystem_is_one_line_and_validate_finds_it(
    read_only_dir: Path, tmp_path: Path, tiny_world: Path
) -> None:
    cfg = write_study(tmp_path / "s", tiny_world, name="ro", extra=f"storage: sqlite:///{read_only_dir / 'demo.db'}")
    for command in ("validate", "search"):
        r = cli(command, str(cfg))
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1, (command, r.stdout, r.stderr)
        assert f"storage: the SQLite database {read_only_dir / 'demo.db'} cannot be written" in lines[0]
        assert "read-only file system" in lines[0] and "Traceback" not in r.stderr


def test_validate_loads_the_tokenizer_and_names_what_is_missing(tmp_path: Path, tiny_world: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_world / "models" / "v0", model)
    (model / "tokenizer.json").unlink()
    cfg = write_study(tmp_path / "s", tiny_world)
    cfg.write_text(cfg.read_text().replace(f"base_model: {tiny_world}/models/v0", f"base_model: {model}"))
    r = cli("validate", str(cfg))
    assert r.returncode == 2, r.stdout
    assert f"base_model: {model}: cannot load the tokenizer: the checkpoint has no tokenizer files" in r.stderr
    assert "sentencepiece" not in r.stderr
