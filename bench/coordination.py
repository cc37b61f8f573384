"""Benchmark: coordination overhead of workers sharing one study on PostgreSQL (trials that only sleep).

    python bench/coordination.py [--sleep 2.0] [--workers 1,2,4,8] [--trials-per-worker 6]
                                 [--url postgresql+psycopg2://postgres@127.0.0.1:5432/test] [--out PATH]
    python bench/coordination.py --quick            # smoke run: N = 1, 2, few trials; writes only with --out

Part 1, throughput. For each N in --workers: a fresh PostgreSQL schema (the URL gets
`?options=-csearch_path=<schema>`), Optuna's tables and the study created once by this process
(`open_storage(..., create_tables=True)`, `optuna.create_study`, the study's `budget` attribute set to
max(12, N x --trials-per-worker)), then N worker processes (this file with --worker; the URL travels
in $RECIPE_OPT_BENCH_URL) each running the real `TrialLoop` with heartbeats on (every
--heartbeat-interval s, default 1, to stress them), the study's real sampler (`create_sampler("tpe",
seed + WorkerInfo(id).seed_offset(), 8)`: multivariate TPE, 8 start-up trials) and an objective that
does what `StudyRunner.objective` does to the storage, minus the training: it samples a real `Recipe`
from search_spaces/default.yaml (sources `mul`, `add_text`, as studies/demo.yaml), writes the recipe,
its hash and summary, sleeps --sleep s, then writes three gate constraints, a metrics dict of ~40
numbers and the proxy TFLOP, and returns three random objective values. The schema is dropped after.

Workers start in two steps: each imports (torch comes with recipe_opt.study, as in `recipe-opt
worker`), opens the storage and loads the study, says "ready" and waits; when all are ready they are
released at once. Start-up (spawn to ready) is reported apart and is not part of the throughput.

Measured from the storage's own timestamps (datetime_start is stamped when `ask` creates the trial,
datetime_complete at `tell`):
  throughput   finished trials / (last complete - first start), in trials per minute
  ideal        N x 60 / sleep;  efficiency = throughput / ideal; steady = sleep / a worker's mean
               cycle (trial + idle gap), without the ramp-up (the N first asks queue on the lock)
               and the tail that a run of a few trials per worker pays
  overhead     per trial, (complete - start) - the time it actually slept: the rest of `ask` (the
               Trial's set-up), the suggest calls (each a write; Optuna 5 runs TPE's multivariate
               sampling lazily, at the first one) and attribute writes, the heartbeat thread's
               start and join, and `tell`; split by timestamps the objective records
  idle gap     per worker, from one of its trials' complete to its next trial's start: the loop's
               stale-trial check, the advisory lock, `count_trials`, the part of `ask` before the
               trial row exists
  lock         the loop's advisory lock, timed in each worker by wrapping `TrialLoop._lock` from
               outside (nothing in the package is changed): the wait to take it, the time it is held
               (count_trials + ask + the releasing commit), and the share of the run it was held
  budget       finished == budget and no other trial rows (the advisory lock's guarantee)
  worker CPU   the workers' CPU seconds during the loop (heartbeat threads included) per trial; and
               how busy the whole machine was meanwhile (/proc/stat), against the workers' share
  connections  peak rows in pg_stat_activity of the workers' connections (the design says <= 3N)
  oversleep    time.sleep's lateness (the machine's scheduling, not coordination), shown apart

Part 2, ask latency at scale: one study holding k = 100, 500, 1000 finished trials (synthetic complete
trials: params and distributions drawn from the real space, the runner's user attributes), timed one
call at a time as a worker makes them: `count_trials`, `study.ask()`, TPE's multivariate sampling
(`trial.relative_params`, forced before the first suggest, which would run it), the suggest calls
of `SearchSpace.sample`, `tell`; and the first `count_trials` of a fresh storage (a worker
joining: Optuna's per-process cache starts empty, and the loop makes that call under the lock). The
loop holds the advisory lock for `count_trials` + `ask`, so 1 / that is the most trials per second
all workers together can start. The first --ask-add-trials (100) trials go in through
`study.add_trials`; the rest, which through `add_trials` would take ~0.15 s each (~50 statements) on
a busy 2-core machine, go in one transaction through Optuna's own ORM models; trials written both ways
are read back and compared with what was written.

Writes bench/results/coordination.json (--quick: nothing, unless --out is given).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

REPO = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
URL_ENV = "RECIPE_OPT_BENCH_URL"
SPACE = REPO / "search_spaces" / "default.yaml"
SOURCES = ("mul", "add_text")  # studies/demo.yaml's new sources
DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize", "minimize"]  # gain, forgetting, cost
N_STARTUP = 8
RETENTION = {"arithmetic": ["demo_add"], "strings": ["demo_rev", "demo_copy"], "knowledge": ["demo_lookup"]}
NEW_TASKS = ["demo_mul", "demo_add_text"]


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


# ---- what a trial writes: the runner's records, with made-up numbers -------------------------------


def fake_metrics(rng: random.Random, values: Sequence[float]) -> dict[str, Any]:
    """Shaped like `StudyRunner.measure`'s metrics for the demo study (~40 numbers)."""
    gain, forgetting, cost = values
    tasks = [*NEW_TASKS, *(t for ts in RETENTION.values() for t in ts)]
    return {
        "gain": gain,
        "forgetting": forgetting,
        "cost": cost,
        "forgetting_per_suite": {s: rng.uniform(0, 0.1) for s in RETENTION},
        "suites_after": {s: rng.random() for s in ["new_skills", *RETENTION]},
        "tasks_after": {t: {"exact_match": rng.random(), "n": 200.0} for t in tasks},
        "eval_seconds": rng.uniform(0.1, 1.5),
        "train": {
            "proxy_steps": 100,
            "tokens_seen": 102400,
            "trainable_params": rng.randrange(10_000, 500_000),
            "train_seconds": rng.uniform(5, 30),
            "peak_memory_mb": rng.uniform(100, 900),
            "proxy_tflops": rng.uniform(0.01, 1),
            "full_update_tflops": cost,
            "full_update_tokens": 409600,
            "tokens_per_second": rng.uniform(2000, 9000),
            "projected_full_seconds": rng.uniform(20, 120),
            "first_loss": rng.uniform(2, 4),
            "final_loss": rng.uniform(0.5, 2),
        },
    }


def fake_values(rng: random.Random) -> list[float]:
    return [rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.1), rng.uniform(1.0, 40.0)]


def gate_constraints(rng: random.Random, values: Sequence[float]) -> dict[str, float]:
    """The demo study's three gates (studies/demo.yaml), as `gate_values` computes them."""
    return {
        "max_forgetting": values[1] - 0.05,
        "max_forgetting:knowledge": rng.uniform(0, 0.1) - 0.10,
        "min_gain": 0.10 - values[0],
    }


# ---- worker process -----------------------------------------------------------------------------


def _say(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def worker_main(args: argparse.Namespace) -> None:
    """One worker: import, attach, say ready, wait for "go", run the real `TrialLoop`, report."""
    started = time.time()
    url = os.environ[URL_ENV]
    import optuna

    from recipe_opt.config import WorkersConfig
    from recipe_opt.space import load_search_space
    from recipe_opt.study import (
        ATTR_BUDGET,
        ATTR_METRICS,
        ATTR_PROXY_TFLOPS,
        ATTR_RECIPE,
        TrialLoop,
        WorkerInfo,
        create_sampler,
        open_storage,
    )

    _quiet_optuna()
    imported = time.time()
    space = load_search_space(SPACE, list(SOURCES))
    settings = WorkersConfig(heartbeat_interval=args.heartbeat_interval)
    worker = WorkerInfo(args.worker_id)
    storage = open_storage(url, settings, create_tables=False, label=f"{args.tag} {args.worker_id}")
    sampler = create_sampler("tpe", args.seed + worker.seed_offset(), N_STARTUP)
    study = optuna.load_study(study_name=args.study, storage=storage, sampler=sampler)
    budget = study.user_attrs[ATTR_BUDGET]
    rng = random.Random(args.seed + worker.seed_offset())

    def objective(trial: optuna.Trial) -> list[float]:
        entered = time.time()
        recipe = space.sample(trial, seed=args.seed).with_stamp()
        trial.set_user_attr(ATTR_RECIPE, recipe.to_dict())
        trial.set_user_attr("recipe_hash", recipe.content_hash)
        trial.set_user_attr("summary", recipe.summary())
        slept_from = time.time()
        time.sleep(args.sleep)
        slept_to = time.time()
        values = fake_values(rng)
        for key, value in gate_constraints(rng, values).items():
            trial.set_constraint(key, value)
        metrics = fake_metrics(rng, values)
        metrics["bench"] = {"entered": entered, "slept_from": slept_from, "slept_to": slept_to}
        trial.set_user_attr(ATTR_METRICS, metrics)
        trial.set_user_attr(ATTR_PROXY_TFLOPS, metrics["train"]["proxy_tflops"])
        return values

    waits: list[str] = []
    loop = TrialLoop(
        study,
        storage,
        objective,
        worker=worker,
        budget=budget,
        workers=settings,
        on_wait=waits.append,
    )
    attach_s = time.time() - imported
    # The advisory lock, timed from outside (the loop is not changed): the wait to get it (a
    # connection, the transaction, other workers holding it) and how long it is held (count_trials
    # + ask + the commit that releases it).
    lock_wait: list[float] = []
    lock_hold: list[float] = []
    take_lock = loop._lock

    @contextlib.contextmanager
    def timed_lock() -> Iterator[None]:
        t0, t1 = time.perf_counter(), None
        try:
            with take_lock():
                t1 = time.perf_counter()
                lock_wait.append(t1 - t0)
                yield
        finally:
            if t1 is not None:
                lock_hold.append(time.perf_counter() - t1)

    setattr(loop, "_lock", timed_lock)  # noqa: B010
    _say({"ready": time.time(), "started": started, "imports_s": imported - started, "attach_s": attach_s})
    if sys.stdin.readline().strip() != "go":
        return
    loop_start, cpu_start = time.time(), time.process_time()
    outcome = loop.run()
    _say(
        {
            "worker": args.worker_id,
            "loop_start": loop_start,
            "loop_end": time.time(),
            "cpu_s": time.process_time() - cpu_start,
            "lock_wait_s": lock_wait,
            "lock_hold_s": lock_hold,
            "complete": outcome.complete,
            "pruned": outcome.pruned,
            "failed": outcome.failed,
            "lost": outcome.lost,
            "stopped": outcome.stopped,
            "waits": waits,
        }
    )


# ---- schemas ------------------------------------------------------------------------------------


def schema_url(url: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return u.render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_schema(url: str, schema: str) -> Iterator[str]:
    """A new, empty schema for one run; dropped with everything in it afterwards."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
            conn.execute(sa.text(f'create schema "{schema}"'))
        yield schema_url(url, schema)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
        engine.dispose()


def server_version(url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("show server_version")).scalar())
    finally:
        engine.dispose()


class ConnectionWatch:
    """Peak count of the workers' server connections (pg_stat_activity), sampled every 0.25 s."""

    def __init__(self, url: str, pattern: str) -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(url, pool_size=1, max_overflow=0)
        self.query = sa.text("select count(*) from pg_stat_activity where application_name like :p")
        self.pattern = pattern
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                n = int(conn.execute(self.query, {"p": self.pattern}).scalar() or 0)
                conn.commit()
                self.peak = max(self.peak, n)
                self.samples += 1
                self._stop.wait(0.25)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()


# ---- part 1: N workers on one study -------------------------------------------------------------


def p95(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=20, method="inclusive")[18]


def ms(x: float) -> float:
    return round(1e3 * x, 1)


def kill_all(procs: Sequence[subprocess.Popen[str]]) -> None:
    """End the worker processes this run started that are still running (by their own handles)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def stamp(when: datetime | None) -> float:
    assert when is not None, "a finished trial has its timestamps"
    return when.timestamp()


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat; zeros elsewhere."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def lock_stats(done: Sequence[dict[str, Any]], span: float) -> dict[str, Any]:
    """The advisory lock across all workers: waits to take it, time held, share of the run held."""
    wait = [x for d in done for x in d["lock_wait_s"]]
    hold = [x for d in done for x in d["lock_hold_s"]]
    if not wait:
        return {}
    return {
        "taken": len(hold),
        "wait_mean": ms(statistics.fmean(wait)),
        "wait_p95": ms(p95(wait)),
        "wait_max": ms(max(wait)),
        "hold_mean": ms(statistics.fmean(hold)),
        "hold_p95": ms(p95(hold)),
        "hold_max": ms(max(hold)),
        "held_share_of_run": round(sum(hold) / span, 4),
    }


def run_workers(n: int, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    import optuna

    from recipe_opt.config import WorkersConfig
    from recipe_opt.study import ATTR_BUDGET, ATTR_METRICS, ATTR_WORKER, count_trials, open_storage

    budget = max(args.min_budget, n * args.trials_per_worker)
    study_name = f"coordination-{tag}"
    load_before = os.getloadavg()
    with fresh_schema(args.url, f"coord_bench_{tag.replace('-', '_')}") as url:
        settings = WorkersConfig(heartbeat_interval=args.heartbeat_interval)
        t0 = time.perf_counter()
        storage = open_storage(url, settings, create_tables=True, label=f"{tag} parent")
        study = optuna.create_study(study_name=study_name, storage=storage, directions=DIRECTIONS)
        study.set_user_attr(ATTR_BUDGET, budget)
        create_s = time.perf_counter() - t0
        procs: list[subprocess.Popen[str]] = []
        logs: list[IO[str]] = []
        spawned: list[float] = []
        ready: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        with contextlib.ExitStack() as files:
            try:
                env = {**os.environ, URL_ENV: url, "PYTHONUNBUFFERED": "1"}
                for i in range(n):
                    logs.append(files.enter_context(tempfile.TemporaryFile("w+")))
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--study", study_name]
                    cmd += ["--worker-id", f"w{i}", "--sleep", str(args.sleep), "--seed", str(args.seed)]
                    cmd += ["--heartbeat-interval", str(args.heartbeat_interval), "--tag", tag]
                    spawned.append(time.time())
                    procs.append(
                        subprocess.Popen(
                            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[-1], text=True
                        )
                    )
                for p, err in zip(procs, logs, strict=True):
                    assert p.stdout is not None
                    line = p.stdout.readline()
                    if not line:
                        p.wait()
                        err.seek(0)
                        sys.exit(f"worker exited before it was ready (rc {p.returncode}):\n{err.read()[-3000:]}")
                    ready.append(json.loads(line))
                all_ready = time.time()
                with ConnectionWatch(args.url, f"recipe-opt {tag} w%") as watch:
                    go = time.time()
                    busy0, total0 = cpu_times()
                    for p in procs:
                        assert p.stdin is not None
                        p.stdin.write("go\n")
                        p.stdin.close()
                    # A worker that never finishes (a deadlock) is killed, and the run says so.
                    limit = 120 + 4 * budget * (args.sleep + 1) / n
                    watchdog = threading.Timer(limit, kill_all, (procs,))
                    watchdog.start()
                    try:
                        for p in procs:
                            assert p.stdout is not None
                            line = p.stdout.readline()
                            p.wait()
                            if line:
                                done.append(json.loads(line))
                    finally:
                        watchdog.cancel()
                    killed = time.time() - go >= limit
                    busy1, total1 = cpu_times()
                    loop_wall = time.time() - go
                stderr = []
                for p, err in zip(procs, logs, strict=True):
                    err.seek(0)
                    text = err.read().strip()
                    if p.returncode or text:
                        stderr.append({"rc": p.returncode, "tail": text[-2000:]})
            finally:
                kill_all(procs)

        trials = study.get_trials(deepcopy=False)
        finished, running = count_trials(study)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        storage.remove_session()
        storage.engine.dispose()

    if not complete:
        sys.exit(f"N = {n}: no trial completed (states {states}); worker stderr: {stderr}")
    starts = [stamp(t.datetime_start) for t in complete]
    ends = [stamp(t.datetime_complete) for t in complete]
    span = max(ends) - min(starts)
    throughput = 60 * len(complete) / span
    ideal = n * 60 / args.sleep
    overhead, ask, before_sleep, after_sleep, oversleep = [], [], [], [], []
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for t, start, end in zip(complete, starts, ends, strict=True):
        b = t.user_attrs[ATTR_METRICS]["bench"]
        slept = b["slept_to"] - b["slept_from"]
        overhead.append(end - start - slept)
        ask.append(b["entered"] - start)
        before_sleep.append(b["slept_from"] - b["entered"])
        after_sleep.append(end - b["slept_to"])
        oversleep.append(slept - args.sleep)
        by_worker.setdefault(t.user_attrs[ATTR_WORKER]["id"], []).append((start, end))
    gaps = []
    for runs in by_worker.values():
        runs.sort()
        gaps += [runs[i + 1][0] - runs[i][1] for i in range(len(runs) - 1)]
    first_start = {w: min(s for s, _ in runs) for w, runs in by_worker.items()}
    startup = [r["ready"] - s for r, s in zip(ready, spawned, strict=True)]
    return {
        "workers": n,
        "budget": budget,
        "finished": finished,
        "trial_rows": len(trials),
        "states": states,
        "budget_hit_exactly": finished == budget and len(trials) == budget and running == 0,
        "span_s": round(span, 3),
        "trials_per_min": round(throughput, 2),
        "ideal_trials_per_min": round(ideal, 2),
        "efficiency": round(throughput / ideal, 4),
        # One worker's cycle once running: sleep + overhead + idle gap (no ramp-up or tail).
        "steady_state_efficiency": round(
            args.sleep
            / (
                statistics.fmean(end - start for start, end in zip(starts, ends, strict=True))
                + (statistics.fmean(gaps) if gaps else 0.0)
            ),
            4,
        ),
        "worker_cpu_s_per_trial": round(sum(d["cpu_s"] for d in done) / len(complete), 3),
        "cpu_while_workers_ran": {
            "machine_busy_share (all processes, /proc/stat)": round((busy1 - busy0) / (total1 - total0), 3)
            if total1 > total0
            else None,
            "workers_share (their CPU s / wall s / cores)": round(
                sum(d["cpu_s"] for d in done) / loop_wall / (os.cpu_count() or 1), 3
            ),
        },
        "overhead_ms": {"mean": ms(statistics.fmean(overhead)), "p95": ms(p95(overhead)), "max": ms(max(overhead))},
        "overhead_parts_mean_ms": {
            "ask_after_trial_row (Trial init)": ms(statistics.fmean(ask)),
            "suggests_incl_tpe_sampling_and_recipe_attrs": ms(statistics.fmean(before_sleep)),
            "result_attrs_heartbeat_join_and_tell": ms(statistics.fmean(after_sleep)),
        },
        "idle_gap_ms": (
            {"mean": ms(statistics.fmean(gaps)), "p95": ms(p95(gaps)), "max": ms(max(gaps)), "count": len(gaps)}
            if gaps
            else None
        ),
        "oversleep_ms": {"mean": ms(statistics.fmean(oversleep)), "max": ms(max(oversleep))},
        "release_to_first_trial_ms": {w: ms(s - go) for w, s in sorted(first_start.items())},
        "trials_per_worker": {w: len(r) for w, r in sorted(by_worker.items())},
        "peak_worker_connections": watch.peak,
        "connection_bound_3N": 3 * n,
        "startup_s": {
            "mean": round(statistics.fmean(startup), 2),
            "max": round(max(startup), 2),
            "imports_mean": round(statistics.fmean(r["imports_s"] for r in ready), 2),
            "attach_mean": round(statistics.fmean(r["attach_s"] for r in ready), 3),
            "all_ready_after_first_spawn": round(all_ready - spawned[0], 2),
        },
        "schema_and_study_creation_s": round(create_s, 3),
        "advisory_lock_ms": lock_stats(done, span),
        "worker_outcomes": [
            {k: v for k, v in d.items() if k not in ("loop_start", "loop_end", "lock_wait_s", "lock_hold_s")}
            for d in done
        ],
        "worker_stderr": stderr,
        "killed_by_watchdog": killed,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# ---- part 2: ask latency with k finished trials --------------------------------------------------


def synthetic_trials(count: int, seed: int) -> list[Any]:
    """Complete trials with the real space's params and distributions and the runner's records."""
    import optuna

    from recipe_opt.space import load_search_space
    from recipe_opt.study import ATTR_METRICS, ATTR_PROXY_TFLOPS, ATTR_RECIPE, ATTR_WORKER

    space = load_search_space(SPACE, list(SOURCES))
    draw = optuna.create_study(directions=DIRECTIONS, sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = random.Random(seed)
    out = []
    for i in range(count):
        trial = draw.ask()
        recipe = space.sample(trial, seed=seed).with_stamp()
        values = fake_values(rng)
        metrics = fake_metrics(rng, values)
        constraints = gate_constraints(rng, values)
        out.append(
            optuna.trial.create_trial(
                params=trial.params,
                distributions=trial.distributions,
                values=values,
                user_attrs={
                    ATTR_RECIPE: recipe.to_dict(),
                    "recipe_hash": recipe.content_hash,
                    "summary": recipe.summary(),
                    ATTR_WORKER: {"id": f"w{i % 8}", "host": "bench", "pid": 0, "devices": "all"},
                    ATTR_METRICS: metrics,
                    ATTR_PROXY_TFLOPS: metrics["train"]["proxy_tflops"],
                },
                system_attrs={"constraints": list(constraints.values())},
            )
        )
        draw.tell(trial, values)
    return out


def bulk_insert(storage: Any, study_id: int, trials: Sequence[Any], first_number: int) -> None:
    """Write complete trials in one transaction through Optuna's own ORM models: the rows
    `add_trial` writes (trial, values, params, user and system attributes), without its ~50
    statements per trial. Checked against `add_trials`' rows by `check_same`."""
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        rows = []
        for i, ft in enumerate(trials):
            row = models.TrialModel(study_id=study_id, number=first_number + i, state=ft.state)
            row.datetime_start, row.datetime_complete = ft.datetime_start, ft.datetime_complete
            for objective, value in enumerate(ft.values):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                row.values.append(models.TrialValueModel(objective=objective, value=stored, value_type=kind))
            for name, value in ft.params.items():
                dist = ft.distributions[name]
                row.params.append(
                    models.TrialParamModel(
                        param_name=name,
                        param_value=dist.to_internal_repr(value),
                        distribution_json=distribution_to_json(dist),
                    )
                )
            for key, value in ft.user_attrs.items():
                row.user_attributes.append(models.TrialUserAttributeModel(key=key, value_json=json.dumps(value)))
            for key, value in ft.system_attrs.items():
                row.system_attributes.append(models.TrialSystemAttributeModel(key=key, value_json=json.dumps(value)))
            rows.append(row)
        session.add_all(rows)
        session.commit()
    finally:
        storage.remove_session()


def distinct_numbers(storage: Any, study_id: int) -> tuple[int, int]:
    """(trial rows, distinct trial numbers) of a study, straight from the table."""
    import sqlalchemy as sa

    with storage.engine.connect() as conn:
        q = sa.text("select count(*), count(distinct number) from trials where study_id = :s")
        rows, numbers = conn.execute(q, {"s": study_id}).one()
    return int(rows), int(numbers)


def check_same(stored: Any, template: Any) -> list[str]:
    """Fields in which a trial read back from the storage differs from the trial it was written from."""
    fields = ("state", "values", "params", "distributions", "user_attrs", "system_attrs")
    return [f for f in fields if getattr(stored, f) != getattr(template, f)]


def ask_latency(args: argparse.Namespace, tag: str) -> dict[str, Any]:
    import optuna

    from recipe_opt.config import WorkersConfig
    from recipe_opt.space import load_search_space
    from recipe_opt.study import count_trials, create_sampler, open_storage

    space = load_search_space(SPACE, list(SOURCES))
    settings = WorkersConfig(heartbeat_interval=args.heartbeat_interval)
    study_name = f"coordination-{tag}"
    rng = random.Random(args.seed)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    populated: list[dict[str, Any]] = []
    checked: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    pool = synthetic_trials(max(args.ask_k), args.seed)
    synth_s = time.perf_counter() - t0
    with fresh_schema(args.url, f"coord_bench_{tag.replace('-', '_')}") as url:
        storage = open_storage(url, settings, create_tables=True, label=f"{tag} parent")
        study = optuna.create_study(study_name=study_name, storage=storage, directions=DIRECTIONS)
        used = 0  # trials of `pool` written so far
        from_pool: dict[int, int] = {}  # trial number -> index in `pool`
        for k in sorted(args.ask_k):
            if time.perf_counter() - t_all > args.ask_budget_s:
                notes.append(f"k={k} skipped: the ask-latency part had used its {args.ask_budget_s:g} s")
                continue
            # The study already holds the trials asked and told at the last k: top it up to k.
            existing = len(study.get_trials(deepcopy=False))
            t0 = time.perf_counter()
            via_add = max(0, min(k - existing, args.ask_add_trials - used))
            study.add_trials(pool[used : used + via_add])
            via_bulk = k - existing - via_add
            if via_bulk > 0:
                bulk_insert(storage, study._study_id, pool[used + via_add : used + via_add + via_bulk], k - via_bulk)
            populate_s = time.perf_counter() - t0
            for j in range(via_add + max(0, via_bulk)):
                from_pool[existing + j] = used + j
            used += via_add + max(0, via_bulk)
            populated.append(
                {"up_to_k": k, "add_trials": via_add, "bulk_orm": via_bulk, "seconds": round(populate_s, 2)}
            )
            # A worker joining now: fresh storage and study (Optuna's per-process cache is empty).
            fresh = open_storage(url, settings, create_tables=False, label=f"{tag} w-joining")
            t0 = time.perf_counter()
            joined = optuna.load_study(
                study_name=study_name, storage=fresh, sampler=create_sampler("tpe", args.seed + k, N_STARTUP)
            )
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            finished, _ = count_trials(joined)
            cold_count_s = time.perf_counter() - t0
            # Every row read back as the trial it was written from, one trial per number.
            rows_, numbers = distinct_numbers(fresh, joined._study_id)
            stored = {t.number: t for t in joined.get_trials(deepcopy=False)}
            if not (finished == k == rows_ == numbers) or any(
                check_same(stored[n], pool[i]) for n, i in from_pool.items()
            ):
                sys.exit(f"k={k}: the study reads back wrong ({finished} finished, {rows_} rows, {numbers} numbers)")
            checked.append({"k": k, "trials_compared": len(from_pool), "rows": rows_, "distinct_numbers": numbers})
            keys = ("count_trials", "ask", "tpe_sampling", "suggests", "tell")
            timings: dict[str, list[float]] = {key: [] for key in keys}
            for _ in range(args.ask_repeats):
                t0 = time.perf_counter()
                count_trials(joined)
                t1 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
                    trial = joined.ask()
                t2 = time.perf_counter()
                # Optuna 5 samples the relative (multivariate) params lazily, at the first suggest:
                # forced here to time it apart, and outside the loop's lock, as it runs there.
                assert len(trial.relative_params) == len(trial.relative_search_space or {})
                t3 = time.perf_counter()
                space.sample(trial, seed=args.seed)
                t4 = time.perf_counter()
                joined.tell(trial, fake_values(rng))
                t5 = time.perf_counter()
                for key, a, b in zip(keys, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
                    timings[key].append(b - a)
                relative = len(trial.relative_params)
            fresh.engine.dispose()
            locked = [c + a for c, a in zip(timings["count_trials"], timings["ask"], strict=True)]
            row = {
                "k_finished": k,
                "k_at_last_ask": k + args.ask_repeats - 1,
                "repeats": args.ask_repeats,
                "tpe_relative_params": relative,
                "populate_s": round(populate_s, 2),
                "join_load_study_ms": ms(load_s),
                "join_first_count_trials_ms": ms(cold_count_s),
                **{f"{key}_ms": {"median": ms(statistics.median(v)), "max": ms(max(v))} for key, v in timings.items()},
                "locked_section_ms (count_trials + ask)": {
                    "median": ms(statistics.median(locked)),
                    "max": ms(max(locked)),
                },
                "max_trial_starts_per_s (1 / median locked section)": round(1 / statistics.median(locked), 1),
            }
            rows.append(row)
            slow = statistics.median(timings["ask"]) + statistics.median(timings["tpe_sampling"])
            if slow > 5.0:
                notes.append(f"k={k}: ask + TPE sampling take {slow:.1f} s (median): too slow")
        storage.engine.dispose()
    return {
        "sampler": f"TPE multivariate, {N_STARTUP} start-up trials (create_sampler('tpe', ...))",
        "synthetic_trials_build_s": round(synth_s, 2),
        "total_s": round(time.perf_counter() - t_all, 1),
        "populate": populated,
        "populate_note": f"the first {args.ask_add_trials} trials through study.add_trials, the rest "
        "through Optuna's ORM models in one transaction (add_trial runs ~50 statements per trial); "
        "at each k every written trial is read back and compared, and trial numbers checked distinct",
        "read_back_checked": checked,
        "rows": rows,
        "notes": notes,
    }


# ---- output ----------------------------------------------------------------------------------------


def dist_version(*names: str) -> str:
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return "not installed"


def machine(url: str) -> dict[str, Any]:
    import optuna
    import sqlalchemy

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg2": dist_version("psycopg2", "psycopg2-binary"),
        "postgresql_server": server_version(url),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def tables(out: dict[str, Any]) -> str:
    lines = [
        f"Sleeping trials of {out['setup']['sleep_s']:g} s, heartbeats every {out['setup']['heartbeat_interval_s']} s, "
        f"{out['machine']['cpu_count']} cores (load {out['machine']['load_average_at_start'][0]:.1f} at start):",
        "",
        "| workers | trials (budget hit) | trials/min | ideal | efficiency (steady) | vs N x 1 worker "
        "| overhead/trial mean (p95) | idle gap mean (p95) | lock wait mean (max), held | worker CPU/trial "
        "| machine CPU busy (workers' share) | connections (≤ 3N) | worker start-up mean (max) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["throughput"]:
        gap = r["idle_gap_ms"]
        gap_s = f"{gap['mean']:.0f} ms ({gap['p95']:.0f})" if gap else "-"
        scaling = f"{100 * r['scaling_vs_1_worker']:.1f}%" if "scaling_vs_1_worker" in r else "-"
        cpu = list(r["cpu_while_workers_ran"].values())
        busy = f"{100 * cpu[0]:.0f}% ({100 * cpu[1]:.0f}%)" if cpu[0] is not None else "-"
        lk = r["advisory_lock_ms"]
        lock = f"{lk['wait_mean']:.0f} ms ({lk['wait_max']:.0f}), {100 * lk['held_share_of_run']:.0f}%" if lk else "-"
        lines.append(
            f"| {r['workers']} | {r['finished']}/{r['budget']} ({'yes' if r['budget_hit_exactly'] else 'NO'}) "
            f"| {r['trials_per_min']:.1f} | {r['ideal_trials_per_min']:.0f} | {100 * r['efficiency']:.1f}% "
            f"({100 * r['steady_state_efficiency']:.0f}%) "
            f"| {scaling} | {r['overhead_ms']['mean']:.0f} ms ({r['overhead_ms']['p95']:.0f}) | {gap_s} "
            f"| {lock} | {1e3 * r['worker_cpu_s_per_trial']:.0f} ms | {busy} "
            f"| {r['peak_worker_connections']} ({r['connection_bound_3N']}) "
            f"| {r['startup_s']['mean']:.1f} s ({r['startup_s']['max']:.1f}) |"
        )
    ask = out.get("ask_latency")
    if ask and ask["rows"]:
        lines += [
            "",
            "| finished trials | count_trials | ask | TPE sampling (multivariate) | suggests | tell "
            "| locked section (count + ask) | max trial starts/s | joining worker's first count_trials |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in ask["rows"]:
            locked = r["locked_section_ms (count_trials + ask)"]["median"]
            med = {key: r[f"{key}_ms"]["median"] for key in ("count_trials", "ask", "tpe_sampling", "suggests", "tell")}
            lines.append(
                f"| {r['k_finished']} | {med['count_trials']:.0f} ms | {med['ask']:.0f} ms "
                f"| {med['tpe_sampling']:.0f} ms | {med['suggests']:.0f} ms | {med['tell']:.0f} ms | {locked:.0f} ms "
                f"| {r['max_trial_starts_per_s (1 / median locked section)']:.1f} "
                f"| {r['join_first_count_trials_ms']:.0f} ms |"
            )
        lines += [f"\n{n}" for n in ask["notes"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sleep", type=float, default=2.0, help="Seconds each trial sleeps.")
    ap.add_argument("--workers", default="1,2,4,8", help="Worker counts to run, comma-separated.")
    ap.add_argument("--trials-per-worker", type=int, default=6, help="Budget = max(12, N x this).")
    ap.add_argument("--heartbeat-interval", type=int, default=1, help="WorkersConfig.heartbeat_interval (s).")
    ap.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL database (a schema per run is made and dropped).")
    ap.add_argument("--out", type=Path, help="JSON path (default bench/results/coordination.json; --quick: none).")
    ap.add_argument("--quick", action="store_true", help="Smoke run: N = 1, 2, 3 trials per worker, k = 100.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-ask", action="store_true", help="Skip part 2 (ask latency).")
    ap.add_argument(
        "--ask-add-trials",
        type=int,
        default=100,
        help="Part 2: trials populated through study.add_trials (~0.1-0.2 s each here); the rest in bulk.",
    )
    # Worker mode (started by this script).
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--study", help=argparse.SUPPRESS)
    ap.add_argument("--worker-id", help=argparse.SUPPRESS)
    ap.add_argument("--tag", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args)
        return
    if args.sleep <= 0 or args.trials_per_worker < 1 or args.heartbeat_interval < 1:
        ap.error("--sleep must be > 0, --trials-per-worker and --heartbeat-interval >= 1")
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    args.min_budget, args.ask_k, args.ask_repeats, args.ask_budget_s = 12, [100, 500, 1000], 5, 110.0
    if args.quick:
        counts, args.trials_per_worker, args.min_budget, args.ask_k, args.ask_repeats = [1, 2], 3, 4, [100], 3
        args.ask_add_trials = min(args.ask_add_trials, 50)
    if not counts or min(counts) < 1:
        ap.error("--workers: comma-separated counts >= 1")
    _quiet_optuna()
    out: dict[str, Any] = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]).replace(str(REPO) + "/", ""),
        "machine": machine(args.url),
        "setup": {
            "storage": "PostgreSQL, a fresh schema per run (dropped after), psycopg2",
            "sleep_s": args.sleep,
            "heartbeat_interval_s": args.heartbeat_interval,
            "grace_period_s": 60,
            "budget": f"max({args.min_budget}, N x {args.trials_per_worker}) trials",
            "sampler": f"TPE multivariate, {N_STARTUP} start-up trials, "
            f"seed {args.seed} + WorkerInfo(id).seed_offset()",
            "objective": "samples a Recipe from search_spaces/default.yaml (mul, add_text), writes the runner's "
            "trial records (recipe, hash, summary, 3 constraints, ~40-number metrics, proxy TFLOP), sleeps",
        },
        "throughput": [],
    }
    tag = f"{os.getpid()}"
    for n in counts:
        print(f"N = {n} workers ...", flush=True)
        row = run_workers(n, args, f"{tag}-n{n}")
        one = [r for r in out["throughput"] if r["workers"] == 1]
        if one:  # throughput per worker against one worker's: what sharing the study costs
            row["scaling_vs_1_worker"] = round(row["trials_per_min"] / (n * one[0]["trials_per_min"]), 4)
        out["throughput"].append(row)
        print(
            f"  {row['finished']}/{row['budget']} trials in {row['span_s']:.1f} s: {row['trials_per_min']:.1f}/min "
            f"of {row['ideal_trials_per_min']:.0f} ideal ({100 * row['efficiency']:.1f}%)",
            flush=True,
        )
    if not args.no_ask:
        print(f"ask latency at k = {args.ask_k} finished trials ...", flush=True)
        out["ask_latency"] = ask_latency(args, f"{tag}-ask")
    out["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = tables(out)
    out["table_markdown"] = text
    print(json.dumps({k: v for k, v in out.items() if k != "table_markdown"}, indent=2))
    print()
    print(text)
    path = args.out or (None if args.quick else REPO / "bench" / "results" / "coordination.json")
    if path is None:
        print("\nquick run: nothing written (pass --out to keep it)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
