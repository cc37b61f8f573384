"""Workers sharing one study through Optuna's RDB storage: the trial loop, heartbeats, retries.

Any number of processes, on any number of machines, run `TrialLoop` against the same study. The
storage is the only thing they share, so everything that keeps the study honest goes through it:

- The budget is the study's (`ATTR_BUDGET`): a worker starts a trial only while finished plus
  running trials stay below it, under a PostgreSQL advisory lock, so N workers that look at once
  never overshoot it; a worker that sees every slot taken waits, and takes over a slot freed by
  a lost worker.
- Heartbeats (server databases): the running trial is stamped every `heartbeat_interval` s from
  a thread. A trial unstamped for `grace_period` s is failed by whichever worker looks next, and
  Optuna's `RetryHeartbeatStaleTrialCallback` queues its recipe again (`max_retry` times).
- A worker whose result arrives after its trial was failed that way (its heartbeats could not
  reach the database for the whole grace period) drops the result: the retry owns that slot, so
  no trial is counted twice (the "Trial ... has already finished" race of optuna#5582).
- SIGINT/SIGTERM (`KeyboardInterrupt` here) fail the running trial with the reason, queue its
  recipe for another worker, and end the loop.

Nothing here imports torch: the objective is any callable, which is how `bench/coordination.py`
measures the coordination overhead with trials that only sleep.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from recipe_opt.config import StorageURL, WorkersConfig
from recipe_opt.exceptions import StorageError, StudyError, first_line
from recipe_opt.study._attrs import ATTR_FIDELITY, ATTR_ORIGIN, ATTR_WORKER, is_prior, set_failure

__all__ = ["LoopOutcome", "TrialLoop", "WorkerInfo", "count_trials"]

ObjectiveFn = Callable[[optuna.Trial], Sequence[float]]
T = TypeVar("T")


def _transient() -> tuple[type[BaseException], ...]:
    """Errors of a dropped or refused connection: retried, never a reason to stop the worker."""
    import sqlalchemy.exc

    return (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


@dataclass(frozen=True)
class WorkerInfo:
    """Who runs a trial; recorded with it, and used for the connection's application_name."""

    id: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    devices: str = field(default_factory=lambda: _devices(os.environ.get("CUDA_VISIBLE_DEVICES")))

    @staticmethod
    def default_id() -> str:
        return f"{socket.gethostname()}-{os.getpid()}"

    def as_attr(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "pid": self.pid, "devices": self.devices}

    def seed_offset(self) -> int:
        """Distinct per worker id, stable across restarts: workers sharing a study must not draw
        the same random recipes (TPE's and GP's start-up trials are random draws)."""
        return int.from_bytes(hashlib.sha256(self.id.encode()).digest()[:3], "big")


def _devices(env: str | None) -> str:
    """The GPUs a worker sees, for the record: CUDA_VISIBLE_DEVICES, "all" unset, "none" empty."""
    if env is None:
        return "all"
    return env.strip() or "none"


class _TrialHandle:
    """`set_user_attr` on a trial known only by its id (for `set_failure` on another worker's trial)."""

    def __init__(self, storage: RDBStorage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id

    def set_user_attr(self, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(self.trial_id, key, value)


class _RetryLostTrial:
    """Optuna's `RetryHeartbeatStaleTrialCallback`, queueing the recipe with a clean record.

    Optuna's callback copies every user attribute into the queued trial; a retry should start
    with only its origin (warm start, informed design), not the lost run's metrics or rung values.
    The failed trial keeps its own attributes; its `TrialRecord.failure` explains it.
    """

    def __init__(self, max_retry: int) -> None:
        with warnings.catch_warnings():  # "experimental since v2.8": chosen knowingly
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not trial.params:  # stopped before its recipe was drawn: nothing to retry, its slot is free
            return
        clean = copy.copy(trial)
        clean.user_attrs = {k: v for k, v in trial.user_attrs.items() if k == ATTR_ORIGIN}
        self.retry(study, clean)


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """(finished, running): trials that count towards the budget, and trials taking a slot now.

    Finished means complete or pruned; failed trials are not measurements and do not count.
    Prior observations (values from another cycle, added for the sampler) never count.
    """
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    finished = running = 0
    for t in study.get_trials(deepcopy=False, states=states):
        if t.state == TrialState.RUNNING:
            running += 1
        elif not is_prior(t):
            finished += 1
    return finished, running


@dataclass
class LoopOutcome:
    """What one worker did, and why it stopped."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    lost: int = 0  # results dropped because another worker had failed the trial as stale
    stopped: Literal["budget", "timeout", "max_cost", "failures", "interrupted", "stop"] = "budget"

    @property
    def ran(self) -> int:
        return self.complete + self.pruned + self.failed + self.lost


class TrialLoop:
    """Pull trials from a shared study until its budget is spent (or time, cost or failures say stop).

    `objective` returns the objective values; it raises `optuna.TrialPruned` to prune and any
    exception in `catch` to fail the trial (other exceptions fail it and propagate). A trial cut
    short by SIGINT/SIGTERM is failed and its recipe queued again.
    """

    def __init__(
        self,
        study: optuna.Study,
        storage: RDBStorage,
        objective: ObjectiveFn,
        *,
        worker: WorkerInfo,
        budget: int | None,
        workers: WorkersConfig,
        timeout: float | None = None,
        max_cost: float | None = None,
        spent: Callable[[optuna.Study], float] | None = None,
        catch: tuple[type[BaseException], ...] = (),
        poll_interval: float = 2.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        if budget is None and timeout is None and max_cost is None:
            raise StudyError("a worker needs a trial budget, a timeout or a max cost, or it never stops")
        self.study = study
        self.storage = storage
        self.objective = objective
        self.worker = worker
        self.budget = budget
        self.settings = workers
        self.timeout = timeout
        self.max_cost = max_cost
        self.spent = spent
        self.catch = catch
        self.poll_interval = poll_interval
        self.on_wait = on_wait or (lambda message: None)
        self.db = StorageURL(storage.url)
        self.heartbeat = self.db.is_server and workers.heartbeat_interval is not None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Start no further trial (the running one finishes); callable from another thread."""
        self._stop.set()

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> LoopOutcome:
        out = LoopOutcome()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        failures_in_a_row = 0
        waiting_said = False
        try:
            while True:
                if self._stop.is_set():
                    out.stopped = "stop"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    out.stopped = "timeout"
                    break
                if self._retrying("reading the compute spent", self._cost_reached):
                    out.stopped = "max_cost"
                    break
                if failures_in_a_row >= self.settings.max_consecutive_failures:
                    out.stopped = "failures"
                    break
                self._retrying("failing stale trials", self._fail_stale)
                trial, finished, running = self._retrying("starting a trial", self._reserve)
                if trial is None:
                    if self.budget is not None and finished >= self.budget:
                        out.stopped = "budget"
                        break
                    if not waiting_said:
                        self.on_wait(
                            f"all {self.budget} trial slots are taken ({finished} finished, {running} running): "
                            "waiting for them to finish, or for a lost worker's trial to be retried"
                        )
                        waiting_said = True
                    self._stop.wait(self.poll_interval)
                    continue
                waiting_said = False
                state = self._run_one(trial)
                if state == TrialState.COMPLETE:
                    out.complete += 1
                elif state == TrialState.PRUNED:
                    out.pruned += 1
                elif state is None:
                    out.lost += 1
                else:
                    out.failed += 1
                failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        except KeyboardInterrupt:
            out.stopped = "interrupted"
            raise
        finally:
            self.storage.remove_session()
        return out

    def _cost_reached(self) -> bool:
        return self.max_cost is not None and self.spent is not None and self.spent(self.study) >= self.max_cost

    def _fail_stale(self) -> None:
        if self.heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, retried across a dropped connection for up to a grace period.

        The pool replaces a dead connection on its next checkout (pool_pre_ping); what fails is
        the statement that was in flight, so the retry is what reconnects. A database still gone
        after `grace_period` s is a `StorageError`: the worker stops, and a restart rejoins.
        """
        delay, deadline, said = 0.5, time.monotonic() + self.settings.grace_period, False
        while True:
            try:
                return fn()
            except _transient() as exc:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"storage {self.db.display}: {what} failed for {self.settings.grace_period} s "
                        f"({type(exc).__name__}: {self.db.scrub(first_line(exc))})"
                    ) from None
                if not said:
                    self.on_wait(f"storage error while {what} ({type(exc).__name__}): reconnecting")
                    said = True
                time.sleep(delay)
                delay = min(2 * delay, 5.0)

    def _reserve(self) -> tuple[optuna.Trial | None, int, int]:
        """A new trial if a budget slot is free, else None; (trial, finished, running)."""
        # Outside the lock first: a joining worker's first read loads the whole study (1.2 s at
        # 1000 trials, bench/coordination.py); under the lock it is then only the trials since.
        count_trials(self.study)
        with self._lock() as locked:
            if locked:
                self._fail_orphans()
            finished, running = count_trials(self.study)
            if self.budget is not None and finished + running >= self.budget:
                return None, finished, running
            trial = self._ask()
            # Still under the lock: a first heartbeat, then the worker's name, in that order. A
            # trial without the name once the lock is free was orphaned by a start that died or
            # lost its connection half-way (`_fail_orphans` fails it); a trial with the name
            # therefore has a heartbeat too, so the stale check fails it if its worker dies from
            # here on. (The other order left a window, a kill between the two writes, in which a
            # trial had a name but no heartbeat: Optuna never counts such a trial as stale, and
            # it would have held a budget slot forever.)
            if self.heartbeat:
                self.storage.record_heartbeat(trial._trial_id)
            trial.set_user_attr(ATTR_WORKER, self.worker.as_attr())
        return trial, finished, running

    def _ask(self) -> optuna.Trial:
        """The next trial: a retry of a lost or interrupted trial first, else what `ask` gives.

        Optuna's `ask` takes the queue in trial-number order, and a retry is queued last, behind
        every informed-design and warm-start recipe not yet started: with a small budget it would
        never run. So a waiting retry (Optuna's `failed_trial` mark) is taken first, the way `ask`
        takes a waiting trial (its state set to RUNNING only if no other worker got there first).
        """
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        # Retries first (Optuna's `failed_trial` mark, set by RetryHeartbeatStaleTrialCallback),
        # then a budgeted search's promotions (its rung's budget counts them, not queued screens).
        first = [t for t in waiting if "failed_trial" in t.system_attrs]
        first += [t for t in waiting if ATTR_FIDELITY in t.user_attrs and "failed_trial" not in t.system_attrs]
        for t in first:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                if self.storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    return optuna.Trial(self.study, t._trial_id)
        with warnings.catch_warnings():
            # "Heartbeat ... supposed to be used with Study.optimize": this loop runs the
            # heartbeat itself (see _heartbeat), as optimize would.
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            return self.study.ask()

    def _fail_orphans(self) -> None:
        """Fail and re-queue RUNNING trials that never got a worker's name (under the lock only).

        A start that fails half-way (the connection dropped inside `ask`) leaves a RUNNING trial
        with no heartbeat, which Optuna never counts as stale: it would hold a budget slot forever.
        """
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if ATTR_WORKER not in t.user_attrs:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    set_failure(
                        _TrialHandle(self.storage, t._trial_id),
                        "orphaned",
                        "orphaned: its worker lost the storage while starting it",
                    )
                    self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                    _RetryLostTrial(self.settings.max_retry)(self.study, self.storage.get_trial(t._trial_id))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        """Serialise count-then-ask across workers (PostgreSQL advisory lock, per study).

        Without it, workers that count at the same moment all see a free slot and the study
        overshoots its budget by up to N-1 trials. The lock is held for one count and one ask;
        the sampler's suggestions come later, at the objective's first `suggest_*`, outside it.
        bench/coordination.py measured 30-40 ms held per start at 100-1000 trials: 25-35 trial
        starts a second for the whole study.
        """
        if not self.db.is_postgresql:
            yield False
            return
        import sqlalchemy as sa

        key = int.from_bytes(hashlib.sha256(f"recipe-opt:{self.study.study_name}".encode()).digest()[:8], "big") >> 1
        # A transaction-scoped lock: released at commit, or by the server when the connection
        # dies (a worker killed while holding it), also behind a transaction-pooling PgBouncer.
        with self.storage.engine.begin() as conn:
            conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": key})
            yield True

    def _run_one(self, trial: optuna.Trial) -> TrialState | None:
        """Run one trial and tell the storage; None if the storage had already failed it."""
        values: Sequence[float] | None = None
        state = TrialState.COMPLETE
        error: BaseException | None = None
        with self._heartbeat(trial._trial_id):
            try:
                values = self.objective(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except KeyboardInterrupt:
                self._interrupted(trial)
                raise
            except Exception as exc:
                state, error = TrialState.FAIL, exc
        storage_failed = isinstance(error, _transient())
        if storage_failed:
            # The storage, not the recipe, failed this trial: say so, and queue the recipe again.
            assert error is not None
            why = f"{type(error).__name__}: {first_line(error)}"
            with contextlib.suppress(*_transient(), optuna.exceptions.UpdateFinishedTrialError):
                self._retrying(
                    "recording a failure", lambda: set_failure(trial, "storage error", f"storage error: {why}")
                )
        attempt = {"skip": False}

        def tell() -> optuna.trial.FrozenTrial:
            # A retried tell may find its first attempt committed: skip_if_finished then returns it.
            skip, attempt["skip"] = attempt["skip"], True
            return self.study.tell(
                trial, values if state == TrialState.COMPLETE else None, state=state, skip_if_finished=skip
            )

        try:
            frozen = self._retrying("recording a result", tell)
        except optuna.exceptions.UpdateFinishedTrialError:
            frozen = None
        if frozen is None or (state != TrialState.FAIL and frozen.state == TrialState.FAIL and not storage_failed):
            # Failed as stale by another worker while this one still ran it (its heartbeats did not
            # get through for a whole grace period); its retry owns the slot, so this result goes.
            self.on_wait(f"trial {trial.number} had been failed as lost by another worker; its result is dropped")
            return None
        if storage_failed:
            with contextlib.suppress(*_transient()):
                _RetryLostTrial(self.settings.max_retry)(self.study, frozen)
        if error is not None and not storage_failed and not isinstance(error, self.catch):
            raise error
        return frozen.state

    def _interrupted(self, trial: optuna.Trial) -> None:
        """SIGINT/SIGTERM mid-trial: fail it with the reason and queue its recipe again."""
        with contextlib.suppress(Exception):  # the storage may be what failed; the heartbeat then retries
            requeued = "; re-queued" if trial.params else ""  # no recipe drawn yet: nothing to retry
            set_failure(trial, "interrupted", f"interrupted: worker {self.worker.id} was stopped{requeued}")
            frozen = self.study.tell(trial, state=TrialState.FAIL)
            _RetryLostTrial(self.settings.max_retry)(self.study, frozen)

    @contextlib.contextmanager
    def _heartbeat(self, trial_id: int) -> Iterator[None]:
        """Stamp the trial every heartbeat_interval s from a thread while it runs.

        Optuna's own heartbeat thread dies on the first storage error; this one logs nothing and
        keeps trying, so a dropped connection costs one missed beat, not the trial.
        """
        if not self.heartbeat:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            try:
                while True:
                    with contextlib.suppress(Exception):
                        self.storage.record_heartbeat(trial_id)
                    if stop.wait(self.settings.heartbeat_interval):
                        return
            finally:
                self.storage.remove_session()  # this thread's connection goes back to the pool

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
