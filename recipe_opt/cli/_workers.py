"""`recipe-opt search --workers N`: N `recipe-opt worker` processes on this machine, one per GPU.

The coordinator (the `search` process) prepares the study, starts the workers, shows their trials
as the storage records them, and selects the recipe once they have all stopped. Each worker is the
same `recipe-opt worker` a cluster would run (deploy/k8s), with its output in
`<output_dir>/workers/<id>.log`; the storage URL reaches it through the environment, never argv.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_opt.config import STORAGE_ENV

if TYPE_CHECKING:
    import optuna

    from recipe_opt.config import StudyConfig
    from recipe_opt.study import Reporter

__all__ = ["assign_devices", "run_local_workers", "visible_devices"]

# After Ctrl-C the workers get this long to fail and re-queue their running trials.
_STOP_GRACE_S = 30.0


def visible_devices() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every CUDA device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch build with CUDA: CPU only
        return []


def assign_devices(n_workers: int, devices: list[str], cpu_count: int) -> list[dict[str, str]]:
    """The environment each worker gets: its own GPU, or (CPU only) its share of the cores.

    On CPU, N workers each taking every core would oversubscribe them N times over; each gets
    cpu_count // N threads (at least one) instead.
    """
    if devices:
        if n_workers > len(devices):
            raise ValueError(f"`workers <= GPUs` must hold, but got (workers={n_workers}, GPUs={len(devices)})")
        return [{"CUDA_VISIBLE_DEVICES": devices[i]} for i in range(n_workers)]
    threads = str(max(1, cpu_count // n_workers))
    return [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads} for _ in range(n_workers)]


def run_local_workers(
    cfg: StudyConfig,
    config: Path,
    study: optuna.Study,
    n_workers: int,
    devices: list[str],
    passthrough: list[str],
    reporter: Reporter,
) -> int | None:
    """Run N workers on the prepared `study` until they all stop; show its trials meanwhile.

    Returns None when the study's budget was reached (or the workers stopped as asked), or the
    exit status to leave with when the workers could not finish it.
    """
    from recipe_opt.study import ATTR_BUDGET, TrialRecord, TrialSummary, count_trials

    log_dir = cfg.output_path / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    envs = assign_devices(n_workers, devices, os.cpu_count() or 1)
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    for i, extra in enumerate(envs):
        wid = f"{host}-w{i}"
        env = {**os.environ, **extra, STORAGE_ENV: cfg.storage_url}
        log = log_dir / f"{wid}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "recipe_opt", "worker", str(config), "--worker-id", wid, *passthrough],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches the coordinator only, which stops the
                # workers in order (each fails and re-queues its running trial) instead of all at once.
                start_new_session=True,
            )
        procs.append((wid, proc, log))
    reporter.phase(f"{n_workers} workers started; their logs: {log_dir}")
    budget = study.user_attrs.get(ATTR_BUDGET)
    shown: set[int] = {
        t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()
    }  # a resumed study's earlier trials are not news

    def show_new() -> None:
        for frozen in study.get_trials(deepcopy=False):
            if frozen.number in shown or not frozen.state.is_finished():
                continue
            shown.add(frozen.number)
            t = TrialRecord.read(frozen, None, ())
            reason = None if t.failure is None else str(t.failure)
            summary = TrialSummary(t.number, t.state, t.values, t.recipe, t.seconds or 0.0, reason, worker=t.worker)
            reporter.trial_finished(summary)

    try:
        while any(p.poll() is None for _, p, _ in procs):
            show_new()
            time.sleep(1.0)
    except KeyboardInterrupt:
        reporter.phase("stopping the workers (each fails and re-queues its running trial) ...")
        _stop(procs)
        show_new()
        raise
    show_new()
    finished, _ = count_trials(study)
    bad = [(wid, p.returncode, log) for wid, p, log in procs if p.returncode not in (0, None)]
    for wid, code, log in bad:
        tail = _last_line(log)
        reporter.phase(f"worker {wid} exited with status {code}: {tail} (log: {log})")
    if budget is not None and finished < budget and len(bad) == len(procs):
        # Every worker failed: the same cause, usually (the first one's line says which).
        return 2 if all(code == 2 for _, code, _ in bad) else 1
    return None


def _stop(procs: list[tuple[str, subprocess.Popen[bytes], Path]]) -> None:
    for _, p, _ in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_GRACE_S
    for _, p, _ in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()  # its trial is failed and retried by the next run's heartbeat check
            p.wait()


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"
