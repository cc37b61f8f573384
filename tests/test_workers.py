"""Many workers, one study, on the local PostgreSQL: kills, dropped connections, signals, secrets.

Every worker here is the real `recipe-opt worker` process training the tiny world's model; the
faults are real too (SIGKILL, SIGTERM, pg_terminate_backend). The tests skip without a server
and fail under CI (tests/conftest.py `pg_url`).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from recipe_opt.cli._workers import assign_devices
from recipe_opt.config import WorkersConfig
from recipe_opt.lineage import LineageStore
from recipe_opt.study import ATTR_RECIPE, ATTR_WORKER, failure_reason
from tests.conftest import write_study

PASSWORD = "Sup3r-S3cret-pw"
# Fast failure detection for tests: a beat a second, a trial silent for 5 s is lost. Five seconds
# leaves room for a live worker's beat to be late on 2 busy cores without being taken for dead.
FAST_HEARTBEAT = "workers: {heartbeat_interval: 1, grace_period: 5, max_retry: 3}"
TrialState = optuna.trial.TrialState


def _with_password(url: str) -> str:
    """The same server URL with a password (trust auth ignores it; nothing may ever show it)."""
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "RECIPE_OPT_STORAGE": url, "OMP_NUM_THREADS": "1", **extra}


def _cli(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_opt", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _start_worker(cfg: Path, url: str, wid: str, logs: Path) -> subprocess.Popen[bytes]:
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{wid}.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "recipe_opt", "worker", str(cfg), "--worker-id", wid],
            env=_env(url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(url))


def _wait_running(
    study: optuna.Study, *, exclude: frozenset[int] = frozenset(), timeout: float = 120
) -> optuna.trial.FrozenTrial:
    """The first trial found RUNNING with its recipe drawn (so: training) not in `exclude`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in exclude and ATTR_RECIPE in t.user_attrs:
                return t
        time.sleep(0.2)
    raise AssertionError(f"no running trial within {timeout} s")


def _one_error_line(r: subprocess.CompletedProcess[str], needle: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines


def _schema_dump(url: str) -> str:
    """Every row of every table in the test's schema, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            tables = c.execute(
                sa.text("select table_name from information_schema.tables where table_schema = current_schema()")
            ).scalars()
            return "\n".join(str(row) for t in list(tables) for row in c.execute(sa.text(f'select * from "{t}"')))
    finally:
        engine.dispose()


def test_devices_one_gpu_per_worker_or_a_share_of_the_cores() -> None:
    assert assign_devices(2, ["3", "5", "6"], 16) == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]
    assert assign_devices(3, [], 8) == [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}] * 3
    assert assign_devices(4, [], 2)[0]["OMP_NUM_THREADS"] == "1"
    with pytest.raises(ValueError, match=r"`workers <= GPUs` must hold, but got \(workers=3, GPUs=2\)"):
        assign_devices(3, ["0", "1"], 16)
    with pytest.raises(ValueError, match=r"grace_period=5, heartbeat_interval=5"):
        WorkersConfig(heartbeat_interval=5, grace_period=5)


def test_search_with_local_workers_pins_gpus_and_never_shows_the_password(
    tiny_world: Path, tmp_path: Path, pg_url: str
) -> None:
    url = _with_password(pg_url)
    cfg = write_study(tmp_path, tiny_world, name="wk", n_trials=4, extra=FAST_HEARTBEAT)
    # No GPU here: the pinning is checked through the environment each worker records (its torch
    # then finds no CUDA device with that id and trains on the CPU).
    env = _env(url, CUDA_VISIBLE_DEVICES="3,5")
    _one_error_line(_cli("search", str(cfg), "--workers", "3", env=env), "`workers <= GPUs` must hold")
    sqlite_env = _env(f"sqlite:///{tmp_path / 'x.db'}")
    _one_error_line(_cli("search", str(cfg), "--workers", "2", env=sqlite_env), "database server")
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "out").exists()

    proc = subprocess.Popen(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cmdlines: list[str] = []
    while proc.poll() is None:  # what `ps` shows of every worker while they run
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if "recipe_opt worker" in cmd:
                    cmdlines.append(cmd)
        time.sleep(0.5)
    out, errs = proc.communicate()
    assert proc.returncode == 0, out + errs
    assert "2 workers on GPUs 3,5" in out and "Traceback" not in errs
    assert cmdlines and all("--worker-id" in c and PASSWORD not in c for c in cmdlines)

    study = _study(pg_url, "wk")
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
    host = socket.gethostname()
    seen = {(t.user_attrs[ATTR_WORKER]["id"], t.user_attrs[ATTR_WORKER]["devices"]) for t in trials}
    assert seen <= {(f"{host}-w0", "3"), (f"{host}-w1", "5")}, seen
    logs = sorted((tmp_path / "out" / "workers").glob("*.log"))
    assert [p.name for p in logs] == [f"{host}-w0.log", f"{host}-w1.log"]
    with LineageStore(pg_url) as store:
        selection = store.latest_selection("wk")
    assert selection is not None
    assert selection.recipe.to_dict() == study.trials[selection.trial_number].user_attrs[ATTR_RECIPE]

    # The password is nowhere: not in output, logs, reports, nor any row of the database.
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in (out, errs, *written, _schema_dump(pg_url)):
        assert PASSWORD not in text
    assert "***" in out  # it was shown, masked
    help_text = _cli("worker", "--help", env={**env, "COLUMNS": "200"}).stdout
    assert "RECIPE_OPT_STORAGE" in help_text and PASSWORD not in help_text


def test_sigkilled_workers_trials_are_retried_and_the_budget_is_met_exactly(
    tiny_world: Path, tmp_path: Path, pg_url: str
) -> None:
    budget, n_workers, n_kills = 10, 4, 5
    cfg = write_study(tmp_path, tiny_world, name="faults", n_trials=budget, extra=FAST_HEARTBEAT)
    r = _cli("prepare", str(cfg), env=_env(pg_url))
    assert r.returncode == 0, r.stdout + r.stderr
    seed = int(os.environ.get("RECIPE_OPT_FAULT_SEED", "7"))
    rng = random.Random(seed)
    logs = tmp_path / "logs"
    procs = {f"w{i}": _start_worker(cfg, pg_url, f"w{i}", logs) for i in range(n_workers)}
    study = _study(pg_url, "faults")
    killed: list[int] = []  # the trials the kills interrupted, read once each victim is dead
    killed_pids: set[int] = set()
    deadline = time.monotonic() + 540
    while len(killed_pids) < n_kills:
        assert time.monotonic() < deadline, f"only {len(killed_pids)} kills (seed {seed})"
        live = {p.pid: wid for wid, p in procs.items() if p.poll() is None}
        running = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(ATTR_WORKER, {}).get("pid") in live and t.number not in killed
        ]
        if not running:
            assert live, f"every worker stopped before {n_kills} kills (seed {seed})"
            time.sleep(0.2)
            continue
        victim = rng.choice(running)
        time.sleep(rng.uniform(0.0, 1.5))  # a random point in the trial
        pid = victim.user_attrs[ATTR_WORKER]["pid"]
        os.kill(pid, signal.SIGKILL)
        procs[live[pid]].wait(timeout=30)  # reaped: nothing more of it can reach the database
        killed_pids.add(pid)
        # What it was running when it died: during the pause it may have finished the victim and
        # started the next trial, or be between two (then it interrupted nothing). Its trials
        # stay RUNNING until the grace period has passed, so this read sees them all.
        killed += [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(ATTR_WORKER, {}).get("pid") == pid
        ]
        # Like a Job replacing the pod: a fresh worker takes the dead one's place.
        procs[f"r{len(killed_pids)}"] = _start_worker(cfg, pg_url, f"r{len(killed_pids)}", logs)
        time.sleep(rng.uniform(0.5, 3.0))
    for wid, p in procs.items():
        code = p.wait(timeout=max(1, deadline - time.monotonic()))
        log = (logs / f"{wid}.log").read_text()
        if p.pid in killed_pids:
            assert code == -signal.SIGKILL
        else:
            assert code == 0, log
            assert "Traceback" not in log, log

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    # The budget is met exactly: no trial lost, none over; nothing left running.
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == budget, (states, seed)
    assert states[TrialState.RUNNING] == 0
    by_number = {t.number: t for t in trials}
    lost = [by_number[n] for n in killed]
    assert len(lost) >= 3, (killed, states, seed)  # most kills land mid-trial; some between trials
    assert all(t.state == TrialState.FAIL for t in lost), (killed, seed)
    # Only kills fail trials here, and each says so: a trial its worker was running is "lost";
    # a kill inside a trial's start (after Optuna created it, before the worker's name was on
    # it) leaves an orphan, failed by the next worker to start one.
    orphans = 0
    for t in trials:
        if t.state == TrialState.FAIL and t.number not in killed:
            assert (failure_reason(t) or "").startswith("orphaned"), (t.number, failure_reason(t), killed, seed)
            orphans += 1
        elif t.state == TrialState.FAIL:
            assert (failure_reason(t) or "").startswith("worker lost"), failure_reason(t)
    assert orphans <= n_kills - len(killed), (orphans, killed, seed)
    # Each lost trial's recipe was queued again with its retry history, and ran (or waits).
    retries = {t.number: t for t in trials if "failed_trial" in t.system_attrs}
    # The retry starts from every value the lost trial had drawn. A kill can land between two of
    # a trial's suggestions, and the retry (queued with those values) then draws the rest itself:
    # its params are a superset, equal when the lost trial had drawn its whole recipe.
    for t in lost:  # a retry's history lists the chain; the last entry is the trial it replaces
        mine = [r for r in retries.values() if r.system_attrs["retry_history"][-1] == t.number]
        expected = 1 if len(t.system_attrs.get("retry_history", [])) < 3 else 0  # max_retry 3
        assert len(mine) == expected, (t.number, seed)
        drawn = [r.params for r in mine]
        assert all(t.params.items() <= p.items() for p in drawn), (t.number, t.params, drawn, seed)
    # No measurement counted twice: one finished trial at most per original recipe.
    roots = Counter(
        t.system_attrs.get("failed_trial", t.number)
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    )
    assert max(roots.values()) == 1, roots

    # The lineage store, written by `select` after the faults, agrees with the study.
    r = _cli("select", str(cfg), env=_env(pg_url))
    assert r.returncode == 0, r.stdout + r.stderr
    with LineageStore(pg_url) as store:
        selection = store.latest_selection("faults")
        counts = store.counts()
    assert selection is not None and by_number[selection.trial_number].state == TrialState.COMPLETE
    assert selection.recipe.to_dict() == by_number[selection.trial_number].user_attrs[ATTR_RECIPE]
    assert counts["lineage_selections"] == 1 and counts["lineage_update_cycles"] == 1


def test_dropped_connection_then_sigterm(tiny_world: Path, tmp_path: Path, pg_url: str) -> None:
    cfg = write_study(tmp_path, tiny_world, name="drops", n_trials=3, extra=FAST_HEARTBEAT)
    assert _cli("prepare", str(cfg), env=_env(pg_url)).returncode == 0
    logs = tmp_path / "logs"
    worker = _start_worker(cfg, pg_url, "w0", logs)
    study = _study(pg_url, "drops")
    first = _wait_running(study)

    # The server drops every connection of the worker mid-trial (its pooled ones included).
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        dropped = c.execute(
            sa.text(
                "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'recipe-opt worker w0'"
            )
        ).all()
    admin.dispose()
    assert dropped, "the worker held no connection to drop"
    deadline = time.monotonic() + 120
    while study.get_trials(deepcopy=False)[first.number].state == TrialState.RUNNING:
        assert time.monotonic() < deadline and worker.poll() is None, (logs / "w0.log").read_text()
        time.sleep(0.2)
    after_drop = study.get_trials(deepcopy=False)[first.number]
    # Reconnected (pool_pre_ping) and finished, or failed cleanly with its reason.
    assert after_drop.state == TrialState.COMPLETE or failure_reason(after_drop), after_drop

    # SIGTERM mid-trial: the trial is failed with the reason and its recipe queued again.
    second = _wait_running(study, exclude=frozenset({first.number}))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 130
    log = (logs / "w0.log").read_text()
    assert "Traceback" not in log and "stopped" in log, log
    stopped = study.get_trials(deepcopy=False)[second.number]
    assert stopped.state == TrialState.FAIL
    assert failure_reason(stopped) == "interrupted: worker w0 was stopped; re-queued"
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    # (The drop may have failed the first trial and queued it: then the second is that retry, and
    # its own retry's history ends with it.)
    assert [(t.params, t.system_attrs["retry_history"][-1]) for t in waiting] == [(stopped.params, second.number)]

    # Another worker takes the queued recipe first and brings the study to its budget.
    other = _start_worker(cfg, pg_url, "w1", logs)
    assert other.wait(timeout=300) == 0, (logs / "w1.log").read_text()
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    retry = next(t for t in trials if t.system_attrs.get("retry_history", [None])[-1] == second.number)
    assert retry.state == TrialState.COMPLETE and retry.params == stopped.params


def test_worker_refuses_an_unprepared_study_and_writes_nothing(tiny_world: Path, tmp_path: Path, pg_url: str) -> None:
    cfg = write_study(tmp_path, tiny_world, name="nothing", n_trials=2)
    r = _cli("worker", str(cfg), env=_env(_with_password(pg_url)))
    _one_error_line(r, "run `recipe-opt prepare` first")
    assert PASSWORD not in r.stdout + r.stderr
    assert _schema_dump(pg_url) == ""  # no tables: workers never create them
