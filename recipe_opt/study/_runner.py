"""The study's trial lifecycle: prepare (or resume) a study, run its trials, release the model.

    config + search space -> resolve the space against the model (once, `resolve_space`)
      -> prepare: tables, study, warm-start and informed-design recipes, base scores, budget
      -> work: the trial loop (`TrialLoop`) runs `Objective` per trial until the budget is spent
      -> select / apply (`_select`, `_apply`), which this runner serves as a `Rerunner`

Every trial stores its full recipe and all metrics as user attributes, so the study in Optuna's
storage is the complete record; selection and reports read only from there (`StudyRecord`).
Control flows down: the runner reports progress to a `Reporter` and calls nothing above it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.storages import RDBStorage

from recipe_opt._files import unwritable
from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation
from recipe_opt.exceptions import ConfigError, RecipeOptError, StudyError, first_line
from recipe_opt.recipe import Recipe
from recipe_opt.registry import SAMPLERS
from recipe_opt.space import SearchSpace
from recipe_opt.study._attrs import (
    ATTR_BASE_CHECKSUM,
    ATTR_BASE_EVAL,
    ATTR_BUDGET,
    ATTR_DATA,
    ATTR_FIDELITY,
    ATTR_LADDER,
    ATTR_ORIGIN,
    ATTR_PRESCREEN,
    ATTR_PROXY_TFLOPS,
    ATTR_SEED_ROLE,
    ATTR_WARM_CHECK,
)
from recipe_opt.study._base import resolve_base_model, resolve_space
from recipe_opt.study._fallback import ROLE_CONTROL, ROLE_WARM, WithoutPriors, decide_warm_check
from recipe_opt.study._gates import Scored
from recipe_opt.study._ladder import LadderPlan, promotion_order, study_plan
from recipe_opt.study._lock import exclusive_study
from recipe_opt.study._objective import Measurement, Objective
from recipe_opt.study._prescreen import run_prescreen
from recipe_opt.study._progress import Reporter, SilentReporter
from recipe_opt.study._projection import Projection, project
from recipe_opt.study._setup import Setup, build_setup
from recipe_opt.study._storage import check_storage, fail_interrupted_trials, open_storage, open_study
from recipe_opt.study._warm import WarmStartRequest, plan_warm_start
from recipe_opt.study._workers import LoopOutcome, TrialLoop, WorkerInfo, count_trials

__all__ = ["StudyRunner", "create_sampler", "proxy_compute"]


def create_sampler(name: str, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    """The named Optuna sampler (`recipe_opt.registry.SAMPLERS`), seeded."""
    try:
        spec = SAMPLERS[name]
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    sampler: optuna.samplers.BaseSampler = spec.create(seed, n_startup_trials)
    return sampler


def proxy_compute(study: optuna.Study) -> float:
    """TFLOP the study's proxies have spent so far, pruned and failed trials included.

    The trial loop asks before every trial, so this reads the one attribute, not whole records
    (`StudyRecord.proxy_compute` gives the same sum)."""
    return sum(float(t.user_attrs.get(ATTR_PROXY_TFLOPS, 0.0)) for t in study.get_trials(deepcopy=False))


@dataclass(frozen=True)
class _Seeds:
    """What seeds a new study: warm-start recipes first, then the informed design fills its slots."""

    enqueue: list[tuple[dict[str, Any], str]]
    priors: list[optuna.trial.FrozenTrial]
    notes: list[str]


def _excess(record: Any, t: Any) -> float:
    """How far trial `t` of `record` misses the gates: its constraint violations, summed."""
    return sum(max(0.0, c.constraint or 0.0) for c in record.checks(t))


def _merged(outcomes: list[LoopOutcome]) -> LoopOutcome:
    """One outcome for a search run as several loops (the rungs of a budgeted search)."""
    out = LoopOutcome()
    for o in outcomes:
        out.complete += o.complete
        out.pruned += o.pruned
        out.failed += o.failed
        out.lost += o.lost
        if o.stopped != "budget":
            out.stopped = o.stopped
    return out


class StudyRunner:
    """Runs one study in this process; what it builds (base model, data, evaluators) lives as long
    as the runner, or until `release`.

    A runner is bound to its study's database and base model, and checks both on construction,
    in the order a user fixes them (the database, then the model), before anything is written.
    The search space is resolved against the base model's architecture here, once, before
    anything else reads it; `space` is that resolved space from then on.
    """

    def __init__(self, cfg: StudyConfig, space: SearchSpace, reporter: Reporter | None = None) -> None:
        check_storage(cfg)
        if cfg.base_model_kind != "dir":  # a lineage reference or hub id: a local directory from here on
            cfg = resolve_base_model(cfg)
        self.cfg = cfg
        self.space = resolve_space(cfg, space)
        self.reporter: Reporter = reporter or SilentReporter()
        self.storage: RDBStorage | None = None
        self.outcome: LoopOutcome | None = None
        self.projection: Projection | None = None  # what one trial costs, measured by `prepare`
        self.ladder: LadderPlan | None = None  # a budgeted search's plan (`trials.budget`), set by `prepare`
        self._continuing = False  # a second trial loop of one search (a checked warm start): not a resume
        # Trials numbered from here on are this run's (earlier ones, and re-queued leftovers of an
        # interrupted run, are not): the command line's exit status counts only this run's failures.
        self.first_new_trial = 0
        self._setup: Setup | None = None
        self._held: contextlib.ExitStack | None = None  # the SQLite database's lock while this runner writes it

    # ---- what is built once per process ----------------------------------------------------------
    @property
    def setup(self) -> Setup:
        if self._setup is None:
            self._setup = build_setup(self.cfg, self.reporter)
        return self._setup

    def build(self) -> None:
        """Load the base model, data and evaluators now (they are otherwise built when first used)."""
        self.setup  # noqa: B018

    def release(self) -> None:
        """Free the base model and evaluators (and their GPU memory); they are built again when used."""
        if self._setup is None:
            return
        import torch

        self._setup = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @property
    def base(self) -> Any:
        return self.setup.base

    @property
    def trainer(self) -> Any:
        return self.setup.trainer

    @property
    def evaluator(self) -> Any:
        return self.setup.evaluator

    @property
    def device(self) -> str:
        return self.setup.device

    @property
    def base_checksum(self) -> str:
        return self.setup.base_checksum

    def base_evaluation(self, study: optuna.Study) -> Evaluation:
        """Base-model scores, computed once per study and cached in its user attributes."""
        cached = study.user_attrs.get(ATTR_BASE_EVAL)
        if cached is not None:
            if study.user_attrs.get(ATTR_BASE_CHECKSUM) != self.setup.base_checksum:
                raise StudyError(
                    f"the base model at {self.cfg.base_model_path} has changed since study "
                    f"{self.cfg.name!r} started; its gains and forgetting would not be comparable"
                )
            return Evaluation.from_dict(cached)
        self.reporter.phase("scoring the base model once for this study")
        evaluation = self.setup.evaluator.evaluate(self.setup.base.model)
        study.set_user_attr(ATTR_BASE_EVAL, evaluation.to_dict())
        study.set_user_attr(ATTR_BASE_CHECKSUM, self.setup.base_checksum)
        return evaluation

    def objective(self, base_eval: Evaluation, rung_base: Evaluation | None = None) -> Objective:
        return Objective(
            self.cfg, self.space, self.setup, self.reporter, base_eval, rung_base or base_eval, ladder=self.ladder
        )

    # ---- selection re-runs (the `Rerunner` protocol of `select_and_record`) ---------------------
    def rerun(self, recipe: Recipe, seed: int, base_eval: Evaluation) -> Scored:
        """`recipe` trained by proxy again with another training seed, scored against the base."""
        self.reporter.phase(f"re-running {recipe.short_hash} with seed {seed}")
        m = self.measure(replace(recipe, seed=seed), base_eval)
        return m.scored()

    def measure(self, recipe: Recipe, base_eval: Evaluation) -> Measurement:
        return self.objective(base_eval).measure(recipe)

    # ---- the study ---------------------------------------------------------------------------
    def _note_lineage(self) -> None:
        """Say so when the study updates a version that is not the family's current one."""
        from recipe_opt.lineage import LineageStore

        cfg = self.cfg
        with LineageStore(cfg.storage_url) as store:
            current = store.current_version(cfg.family)
            known = {v.name: v for v in store.list_versions_or_empty(cfg.family)}
        base = known.get(cfg.base_version)
        if base is not None and base.status == "rejected":
            self.reporter.phase(f"note: base {cfg.family}/{cfg.base_version} was rejected at release")
        elif current is not None and current.name != cfg.base_version:
            self.reporter.phase(
                f"note: {cfg.family}'s current version is {current.name}; this study updates {cfg.base_version}"
            )

    def _plan(self, request: WarmStartRequest | None) -> _Seeds | None:
        """The warm start of a new study, planned on this runner's own (resolved) space."""
        if request is None or not request.sources:
            return None
        from recipe_opt.lineage import LineageStore

        with LineageStore(self.cfg.storage_url) as store:
            plan = plan_warm_start(
                self.cfg,
                self.space,
                request.sources,
                store=store,
                max_recipes=request.max_recipes,
                priors=request.priors,
            )
        return _Seeds(plan.enqueue, plan.priors, plan.notes)

    def _design(self) -> list[dict[str, Any]]:
        """The config's initial design (`sampler.initial_design`, `auto` resolved: informed or mixed)."""
        return self.space.informed_design(spread_choices=self.cfg.initial_design == "mixed")

    def _seed_new_study(self, study: optuna.Study, warm: _Seeds | None) -> None:
        """Warm-start recipes first, then the informed design fills the rest of its slots (a
        budgeted search queues no more than its plan screens)."""
        cap = self.ladder.rungs[0].count if self.ladder is not None else None
        n_warm = 0
        if warm is not None:
            for note in warm.notes:
                self.reporter.phase(f"warm start: {note}")
            if warm.priors:
                study.add_trials(warm.priors)
            enqueue = warm.enqueue[:cap] if cap is not None else warm.enqueue
            # A checked warm start (`warm_start.control`) tags its seeds: warm recipes and control.
            control = self.cfg.warm_start.control if enqueue and self.ladder is None else 0
            role = {ATTR_SEED_ROLE: ROLE_WARM} if control else {}
            for params, origin in enqueue:
                study.enqueue_trial(params, user_attrs={ATTR_ORIGIN: origin, **role})
            n_warm = len(enqueue)
            self.reporter.phase(f"warm start: {n_warm} recipes enqueued, {len(warm.priors)} prior observations added")
            if control:
                # Every informed-design seed of a checked warm start is its control: at least
                # `control`, and the slots the warm recipes leave free, as without the check.
                design = self._design()
                fill = max(0, len(design) - n_warm) if self.cfg.initial_design != "none" else 0
                design = design[: max(control, fill)]
                for params in design:
                    study.enqueue_trial(
                        params,
                        user_attrs={
                            ATTR_ORIGIN: f"{self.cfg.initial_design} initial design (the warm start's control)",
                            ATTR_SEED_ROLE: ROLE_CONTROL,
                        },
                        skip_if_exists=False,
                    )
                study.set_user_attr(ATTR_WARM_CHECK, {"decided": False, "control": len(design)})
                self.reporter.phase(
                    f"warm start: {len(design)} informed-design recipes run beside it as a control; "
                    "if they do better in the gates, the search falls back to the cold design"
                )
                return
        if self.cfg.initial_design != "none":
            design = self._design()
            slots = len(design) if cap is None else min(len(design), cap)
            for params in design[: max(0, slots - n_warm)]:
                study.enqueue_trial(params, user_attrs={ATTR_ORIGIN: f"{self.cfg.initial_design} initial design"})

    def prepare(
        self,
        *,
        n_trials: int | None = None,
        warm_start: WarmStartRequest | None = None,
        timeout: float | None = None,
        max_cost: float | None = None,
    ) -> optuna.Study:
        """Everything before the first trial, done once per study: tables, study, seeds, base scores.

        Creates Optuna's and the lineage store's tables (never by workers: concurrent first-time
        creation fails, optuna#1092), the study with its queued warm-start and informed-design
        recipes, and the base model's scores. Records the trial budget (`n_trials` or the config's)
        in the study, where every worker reads it. Everything that can fail on bad input (storage
        URL, model, data, eval tasks, warm-start sources, a space whose one trial would not fit
        `timeout` s or `max_cost` TFLOP (default: the config's)) is checked before the storage is
        written to.
        """
        cfg = self.cfg
        self.build()
        # The end of the search writes the recipe and the reports there: found out now, not
        # after every trial has run.
        problem = unwritable(cfg.output_path)
        if problem is not None:
            raise ConfigError.single(
                str(cfg.config_path), "output_dir", f"{cfg.output_path} cannot be written: {problem}"
            )
        self.check_projection(
            timeout=cfg.trials.timeout if timeout is None else timeout,
            max_cost=cfg.trials.max_cost if max_cost is None else max_cost,
        )
        # A budget too small for the smallest plan is refused here, before anything is written.
        planned = self.plan(n_trials=n_trials) if cfg.trials.budget is not None else None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.hold_database("search")  # before the tables: two first runs must not race to create them
        self.storage = open_storage(cfg.database, cfg.workers, create_tables=True, label="coordinator")
        study = open_study(cfg, self.space, storage=self.storage)
        # Per source: the format read, the rows, and the rows left out (with why), for the record.
        study.set_user_attr(ATTR_DATA, self.setup.data_report)
        self._note_lineage()  # opens (and creates or migrates) the lineage tables, before any worker
        fail_interrupted_trials(study, cfg.database, cfg.workers.max_retry)
        budget = cfg.trials.n_trials if n_trials is None else n_trials
        if budget is not None or ATTR_BUDGET not in study.user_attrs:
            study.set_user_attr(ATTR_BUDGET, budget)
        if planned is not None:  # a budgeted search: its plan, once (a resume keeps the first)
            stored = study.user_attrs.get(ATTR_LADDER)
            self.ladder = LadderPlan.from_dict(stored["plan"]) if stored else planned
            if not stored:
                study.set_user_attr(ATTR_LADDER, {"plan": self.ladder.to_dict()})
        new = not study.trials
        if new:
            self._seed_new_study(study, self._plan(warm_start))
        elif warm_start is not None and warm_start.sources:
            self.reporter.phase("warm start skipped: it seeds a new study, and this one is being resumed")
        base_eval = self.base_evaluation(study)
        if new and cfg.prescreen.enabled:
            self._prescreen(study, base_eval)
        return study

    def _prescreen(self, study: optuna.Study, base_eval: Evaluation) -> None:
        """Simulate mixtures x replay by adapter interpolation; queue the best as the next trials."""
        p = self.cfg.prescreen
        self.reporter.phase(
            f"prescreen: training probes at {p.probe_fraction:g} of the anchor's steps, "
            f"simulating {p.candidates} mixtures x replay"
        )
        result = run_prescreen(
            self.cfg, self.space, self.setup, base_eval, candidates=p.candidates, fraction=p.probe_fraction
        )
        # Best within the gates first (run_prescreen's order); where none passes, the best anyway.
        top = result.candidates[: p.top_k]
        for c in top:
            origin = f"prescreen (simulated gain {c.gain:+.3f}, forgetting {c.forgetting:+.3f})"
            study.enqueue_trial(self.space.params_for(c.recipe), user_attrs={ATTR_ORIGIN: origin})
        study.set_user_attr(ATTR_PRESCREEN, result.to_dict(p.top_k))
        self.reporter.phase(
            f"prescreen: {len(result.probes)} probes, {result.tflop:.3g} TFLOP, {result.seconds:.0f} s; "
            f"queued the best {len(top)} of {len(result.candidates)}"
        )

    def check_projection(self, *, timeout: float | None, max_cost: float | None) -> Projection:
        """Measure a proxy step, show what one trial will cost and take, and refuse (writing
        nothing) a space whose single trial would not fit the budget (see `_projection`)."""
        projection = project(self.cfg, self.space, self.setup)
        for line in projection.lines():
            self.reporter.phase(line)
        problems = projection.problems(self.space, max_cost=max_cost, timeout=timeout)
        if problems:
            raise ConfigError(problems)
        self.projection = projection
        return projection

    def attach(self, worker: WorkerInfo | None = None) -> optuna.Study:
        """Join a prepared study (a worker): its tables, study and base scores must exist."""
        cfg = self.cfg
        self.build()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.hold_database("worker")  # a no-op on a server database, where workers share the study
        label = f"worker {worker.id}" if worker else "worker"
        try:
            self.storage = open_storage(cfg.database, cfg.workers, create_tables=False, label=label)
        except StudyError:  # check_storage reached the database: what is missing is the tables
            raise StudyError(
                f"storage {cfg.storage_display} holds no recipe-opt study tables (workers never create "
                "them): run `recipe-opt prepare` first"
            ) from None
        try:
            study = open_study(cfg, self.space, storage=self.storage, create=False)
        except StudyError:
            raise
        except Exception as exc:  # tables from another tool or an older Optuna
            raise StudyError(
                f"storage {cfg.storage_display}: cannot load study {cfg.name!r} ({first_line(exc)})"
            ) from None
        if ATTR_BASE_EVAL not in study.user_attrs:
            raise StudyError(
                f"study {cfg.name!r} in {cfg.storage_display} is not prepared (no base-model scores): "
                "run `recipe-opt prepare` first"
            )
        return study

    def work(
        self,
        study: optuna.Study,
        *,
        timeout: float | None = None,
        max_cost: float | None = None,
        worker: WorkerInfo | None = None,
        poll_interval: float = 2.0,
    ) -> LoopOutcome:
        """Run trials of a prepared study until its budget is spent (or `timeout` s pass, or the
        study's summed proxy compute reaches `max_cost` TFLOP). Any number of processes may
        work on one study at once (server databases)."""
        cfg = self.cfg
        assert self.storage is not None, "prepare() or attach() first"
        finished, _ = count_trials(study)
        # Re-seed per worker and on resume, so no two workers and no resumed run replay the draws
        # of another (the in-process search keeps seed + finished, as before workers existed).
        offset = worker.seed_offset() if worker else 0
        study.sampler = create_sampler(cfg.sampler.name, cfg.seed + finished + offset, cfg.sampler.n_startup_trials)
        if (study.user_attrs.get(ATTR_WARM_CHECK) or {}).get("fallback"):
            study.sampler = WithoutPriors(study.sampler)  # the warm start misled: its priors with it
        budget = study.user_attrs.get(ATTR_BUDGET)
        timeout = cfg.trials.timeout if timeout is None else timeout
        max_cost = cfg.trials.max_cost if max_cost is None else max_cost
        self.first_new_trial = (
            max((t.number for t in study.trials if t.state != optuna.trial.TrialState.WAITING), default=-1) + 1
        )
        base_eval = self.base_evaluation(study)
        s = self.setup
        rung_base = base_eval if s.rung_evaluator is s.evaluator else s.rung_evaluator.evaluate(s.base.model)
        if budget is not None and finished >= budget:
            self.reporter.phase(f"study {cfg.name!r} already holds {finished} finished trials; nothing to run")
            return LoopOutcome()
        # A budgeted search's rungs, and a checked warm start's second loop, are not resumes.
        if finished and self.ladder is None and not self._continuing:
            self.reporter.phase(f"resuming study {cfg.name!r} at {finished} finished trials")
        loop = TrialLoop(
            study,
            self.storage,
            self.objective(base_eval, rung_base),
            worker=worker or WorkerInfo("main"),
            budget=budget,
            workers=cfg.workers,
            timeout=timeout,
            max_cost=max_cost,
            spent=proxy_compute,
            # RuntimeError covers torch.OutOfMemoryError (CUDA) and other kernel failures;
            # MemoryError is CPU allocation failure. Each fails its trial, never the study.
            catch=(RecipeOptError, RuntimeError, ValueError, MemoryError),
            poll_interval=poll_interval,
            on_wait=self.reporter.phase,
        )
        # Everything built so far (the base model, tokenised data, eval tasks, the imports of
        # torch, transformers and lm-eval: ~440k objects on the demo world) lives as long as the
        # process. Frozen, it is left out of every later garbage collection: accelerate's
        # `free_memory` after each trial runs `gc.collect()`, which scanned all of it in 0.23 s
        # (3% of a 7 s demo trial) and now takes ~0.01 s. Reference counting still frees it
        # when dropped; frozen only while the loop runs, so a longer-lived caller (a notebook, the
        # cycle benchmarks) gets its collector back as it was.
        gc.collect()
        gc.freeze()
        try:
            outcome = loop.run()
        finally:
            gc.unfreeze()
        if outcome.stopped == "max_cost":
            self.reporter.phase(
                f"proxy compute {proxy_compute(study):.3g} TFLOP reached max cost {max_cost:g}: stopping"
            )
        elif outcome.stopped == "failures":
            self.reporter.phase(
                f"{cfg.workers.max_consecutive_failures} trials in a row failed in this process: stopping "
                "(a broken setup, not bad luck; see the reasons below)"
            )
        return outcome

    def run(
        self,
        *,
        n_trials: int | None = None,
        timeout: float | None = None,
        max_cost: float | None = None,
        warm_start: WarmStartRequest | None = None,
    ) -> optuna.Study:
        """Prepare (or resume) the study and run it in this process until it holds `n_trials`
        finished trials, `timeout` seconds pass, or its proxy compute reaches `max_cost` TFLOP."""
        try:
            study = self.prepare(n_trials=n_trials, warm_start=warm_start, timeout=timeout, max_cost=max_cost)
            if self.cfg.trials.budget is None:
                self.outcome = self._work_checked(study, timeout=timeout, max_cost=max_cost)
            else:
                self._run_ladder(study, timeout=timeout)
        finally:
            self.close()
        return study

    def _work_checked(self, study: optuna.Study, *, timeout: float | None, max_cost: float | None) -> LoopOutcome:
        """`work`, with a checked warm start's decision between its seeds and the rest (`_fallback`):
        the seeds run first, then the warm recipes are compared with the control, and the rest of
        the budget runs on what was decided (resumable: an undecided check is made on resume)."""
        check = study.user_attrs.get(ATTR_WARM_CHECK)
        if not check or check.get("decided"):
            return self.work(study, timeout=timeout, max_cost=max_cost)
        budget = study.user_attrs.get(ATTR_BUDGET)
        trials = study.get_trials(deepcopy=False)
        role_of = {t.number: str(t.user_attrs[ATTR_SEED_ROLE]) for t in trials if ATTR_SEED_ROLE in t.user_attrs}
        waiting = [t for t in trials if t.number in role_of and t.state == optuna.trial.TrialState.WAITING]
        outcomes = []
        if waiting:
            finished, _ = count_trials(study)
            seeds = finished + len(waiting)  # the seeds (as many as the budget holds), then the check
            study.set_user_attr(ATTR_BUDGET, seeds if budget is None else min(budget, seeds))
            try:
                outcomes.append(self.work(study, timeout=timeout, max_cost=max_cost))
            finally:
                study.set_user_attr(ATTR_BUDGET, budget)
            if outcomes[-1].stopped not in ("budget", None):
                return outcomes[-1]  # stopped by time, cost or failures: the check waits for a resume
        from recipe_opt.study._records import StudyRecord

        decision = decide_warm_check(StudyRecord.read(study), role_of)
        self.reporter.phase(decision.line())
        if decision.fallback and self.cfg.initial_design != "none":
            for params in self._design()[int(check.get("control") or 0) :]:
                study.enqueue_trial(
                    params, user_attrs={ATTR_ORIGIN: f"{self.cfg.initial_design} initial design (warm-start fallback)"}
                )
        study.set_user_attr(ATTR_WARM_CHECK, {**decision.to_dict(), "control": check.get("control")})
        self._continuing = bool(outcomes)  # the second loop of one search, not a resume
        outcomes.append(self.work(study, timeout=timeout, max_cost=max_cost))
        return _merged(outcomes)

    # ---- a budgeted search (`trials.budget`, `_ladder`) ------------------------------------------
    def plan(self, *, n_trials: int | None = None) -> LadderPlan:
        """The budget's plan for this study's space (`plan_ladder`), from the measured projection."""
        cfg = self.cfg
        p = self.projection or self.check_projection(timeout=cfg.trials.timeout, max_cost=cfg.trials.max_cost)
        return study_plan(cfg, self.space, p, n_trials=n_trials)

    def _run_ladder(self, study: optuna.Study, *, timeout: float | None) -> None:
        """Screen, promote rung by rung, train the finalists in full (resumable: each rung's
        trials are queued once, and a rerun finishes what is queued)."""
        from recipe_opt.study._records import StudyRecord

        assert self.ladder is not None, "prepare() plans a budgeted search"
        for line in self.ladder.lines():
            self.reporter.phase(line)
        outcomes: list[LoopOutcome] = []
        for rung in self.ladder.rungs:
            record = StudyRecord.read(study)
            if rung.index == 0:  # the sampler's trials (the informed design's first): all screens
                study.set_user_attr(ATTR_BUDGET, rung.count)
            else:
                at = [t for t in record.trials if t.fidelity.get("rung") == rung.index]
                below = [t for t in record.judged if t.fidelity.get("rung") == rung.index - 1]
                if not at:
                    order = promotion_order(
                        below,
                        lambda t: t.values,
                        record.objectives,
                        feasible=record.feasible,
                        excess=functools.partial(_excess, record),
                    )
                    for parent in order[: rung.count]:
                        assert parent.recipe is not None
                        study.enqueue_trial(
                            parent.trial.params,
                            user_attrs={
                                ATTR_ORIGIN: f"promoted from trial {parent.number} ({rung.label()})",
                                ATTR_FIDELITY: {"rung": rung.index, "continues": parent.number},
                            },
                            skip_if_exists=False,
                        )
                    self.reporter.phase(
                        f"{rung.label()}: continuing trial(s) "
                        + ", ".join(str(p.number) for p in order[: rung.count])
                        + f" of {len(below)} at rung {rung.index - 1}"
                    )
                finished, _ = count_trials(study)
                waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
                study.set_user_attr(ATTR_BUDGET, finished + waiting)
            outcomes.append(self.work(study, timeout=timeout))
        self.outcome = _merged(outcomes)
        record = StudyRecord.read(study)
        spent = {
            r.label(): round(sum(t.proxy_tflops for t in record.trials if t.fidelity.get("rung") == r.index), 6)
            for r in self.ladder.rungs
        }
        study.set_user_attr(ATTR_LADDER, {"plan": self.ladder.to_dict(), "spent_tflop": spent})
        self.reporter.phase("budget spent: " + ", ".join(f"{k} {v:.3g} TFLOP" for k, v in spent.items()))

    def hold_database(self, what: str) -> None:
        """Take the SQLite database's lock (once) until `close`: one process writes a SQLite study."""
        if self._held is None:
            held = contextlib.ExitStack()
            held.enter_context(exclusive_study(self.cfg.database, what))
            self._held = held

    def close(self) -> None:
        """Let go of the database's lock (a process that ends lets go of it anyway)."""
        if self._held is not None:
            self._held.close()
            self._held = None
