"""The study: an Optuna multi-objective search whose trials are proxy fine-tunes.

Per trial: sample a `Recipe` from the search space -> proxy-train it -> evaluate -> objective
values (gain, forgetting, cost). Every trial stores its full recipe and all metrics as user
attributes, so the study in Optuna's storage is the complete record; selection and reports read
only from there.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna

from recipe_opt.config import SourceConfig, StudyConfig
from recipe_opt.data import EncodedExample, encode_examples, read_jsonl
from recipe_opt.evaluate import Evaluation, Suite, SuiteEvaluator, find_tasks, make_scorer
from recipe_opt.exceptions import RecipeOptError, StudyError, TrainingError
from recipe_opt.recipe import Recipe
from recipe_opt.space import SearchSpace
from recipe_opt.train import (
    ProxySettings,
    ProxyTrainer,
    TrainingData,
    TrialDiverged,
    load_base_model,
    state_checksum,
)

__all__ = [
    "ATTR_BASE_EVAL",
    "ATTR_FAILURE",
    "ATTR_METRICS",
    "ATTR_RECIPE",
    "SearchReporter",
    "StudyRunner",
    "TrialSummary",
    "check_storage",
    "create_sampler",
    "data_manifest",
    "file_sha256",
    "open_study",
]

ATTR_RECIPE = "recipe"
ATTR_METRICS = "metrics"
ATTR_FAILURE = "failure"
ATTR_BASE_EVAL = "base_evaluation"
ATTR_BASE_CHECKSUM = "base_checksum"
ATTR_FINGERPRINT = "fingerprint"


class SearchReporter(Protocol):
    """Progress callbacks (the CLI renders them with rich)."""

    def phase(self, message: str) -> None: ...

    def trial_started(self, number: int, recipe: Recipe, proxy_steps: int) -> None: ...

    def step(self, done: int, total: int, loss: float) -> None: ...

    def trial_finished(self, summary: TrialSummary) -> None: ...


class _SilentReporter:
    def phase(self, message: str) -> None:
        pass

    def trial_started(self, number: int, recipe: Recipe, proxy_steps: int) -> None:
        pass

    def step(self, done: int, total: int, loss: float) -> None:
        pass

    def trial_finished(self, summary: TrialSummary) -> None:
        pass


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str
    values: dict[str, float]
    recipe: Recipe | None
    seconds: float
    reason: str | None = None


def create_sampler(name: str, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler, seeded."""
    s = optuna.samplers
    if name == "tpe":
        return s.TPESampler(seed=seed, n_startup_trials=n_startup_trials, multivariate=True)
    if name == "gp":
        return s.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    if name == "nsga2":
        return s.NSGAIISampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "qmc":
        return s.QMCSampler(seed=seed, scramble=True)
    raise StudyError(f"unknown sampler {name!r}; known: tpe, gp, nsga2, random, qmc")


def file_sha256(path: Any, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_storage(cfg: StudyConfig) -> None:
    """Fail early, writing nothing, if the study's database cannot be reached."""
    import sqlalchemy as sa

    url = cfg.storage_url
    if url.startswith("sqlite:///"):
        parent = Path(url.removeprefix("sqlite:///")).parent
        if not parent.is_dir():
            raise StudyError(f"storage {cfg.storage_display}: directory {parent} does not exist")
        return
    try:
        engine = sa.create_engine(url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # connection refused, bad credentials, unknown dialect, missing driver
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StudyError(f"storage {cfg.storage_display}: cannot open ({type(exc).__name__}: {first})") from None


def data_manifest(cfg: StudyConfig) -> dict[str, dict[str, str]]:
    """Path and sha256 of every data source: what the lineage records the cycle was run on."""
    return {
        f"{group}/{name}": {
            "path": str(cfg.source_path(src)),
            "sha256": file_sha256(cfg.source_path(src)),
        }
        for group in ("new", "replay")
        for name, src in getattr(cfg.sources, group).items()
    }


def _fingerprint(cfg: StudyConfig, space: SearchSpace) -> str:
    """What must not change when a study is resumed: objectives, space, sources, suites, proxy."""
    body = {
        "objectives": cfg.objectives,
        "space": space.spec.model_dump(mode="json"),
        "sources": cfg.sources.model_dump(mode="json"),
        "evaluation": cfg.evaluation.model_dump(mode="json", exclude={"batch_size"}),
        "proxy": cfg.proxy.model_dump(mode="json", exclude={"device"}),
        "seed": cfg.seed,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def open_study(
    cfg: StudyConfig, space: SearchSpace, *, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    """Create the study, or load it to resume; refuses to resume under a changed config."""
    try:
        storage = optuna.storages.RDBStorage(cfg.storage_url)
    except Exception as exc:  # SQLAlchemy connection errors, a missing DB driver (ImportError), bad URLs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StudyError(f"storage {cfg.storage_display}: cannot open ({type(exc).__name__}: {first})") from None
    study = optuna.create_study(
        study_name=cfg.name,
        storage=storage,
        directions=cfg.directions(),
        sampler=sampler,
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != cfg.directions():
        raise StudyError(
            f"study {cfg.name!r} in {cfg.storage_display} has directions "
            f"{[d.name.lower() for d in study.directions]}, the config asks {cfg.directions()}: "
            "use a new study name"
        )
    fp = _fingerprint(cfg, space)
    stored = study.user_attrs.get(ATTR_FINGERPRINT)
    if stored is None:
        study.set_user_attr(ATTR_FINGERPRINT, fp)
        study.set_user_attr("objectives", cfg.objectives)
        study.set_user_attr("config", cfg.model_dump(mode="json", exclude={"config_path", "storage"}))
    elif stored != fp:
        raise StudyError(
            f"study {cfg.name!r} was started with a different search space, sources, suites or "
            "proxy settings; resuming would mix incomparable trials: give the study a new name"
        )
    return study


class StudyRunner:
    """Holds what is built once per process: base model, encoded data, evaluator."""

    def __init__(self, cfg: StudyConfig, space: SearchSpace, reporter: SearchReporter | None = None) -> None:
        self.cfg = cfg
        self.space = space
        self.reporter: SearchReporter = reporter or _SilentReporter()
        self._built = False

    # ---- one-time setup ------------------------------------------------------------------------
    def build(self) -> None:
        if self._built:
            return
        import torch

        cfg = self.cfg
        device = cfg.proxy.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise TrainingError("proxy.device is 'cuda' but no CUDA device is available")
        self.device = device
        self.reporter.phase(f"loading base model {cfg.base_model_path}")
        self.base = load_base_model(cfg.base_model_path, device=device)
        tok, max_len = self.base.tokenizer, cfg.proxy.max_seq_len

        self.reporter.phase("reading and tokenising data sources")

        def encoded(src: SourceConfig) -> list[EncodedExample]:
            path = cfg.source_path(src)
            return encode_examples(tok, read_jsonl(path), max_seq_len=max_len, source=str(path))

        new = {name: encoded(src) for name, src in cfg.sources.new.items()}
        replay = {name: encoded(src) for name, src in cfg.sources.replay.items()}
        data = TrainingData(
            new=new,
            replay=replay,
            replay_weights={n: s.weight for n, s in cfg.sources.replay.items()},
        )
        settings = ProxySettings(
            fraction=cfg.proxy.fraction,
            batch_size=cfg.proxy.batch_size,
            max_seq_len=max_len,
            min_steps=cfg.proxy.min_steps,
            max_grad_norm=cfg.proxy.max_grad_norm,
            device=device,
        )
        self.trainer = ProxyTrainer(self.base, data, settings)

        ev = cfg.evaluation
        self.reporter.phase(f"building eval tasks ({ev.backend})")
        names = list(dict.fromkeys([*ev.new_task.tasks, *(t for s in ev.retention for t in s.tasks)]))
        tasks = find_tasks(cfg.tasks_dir_path, names, cfg.data_root_path)
        scorer = make_scorer(
            ev.backend,
            tasks,
            tok,
            pad_id=self.base.pad_id,
            max_seq_len=max_len,
            batch_size=ev.batch_size,
            limit=ev.limit,
            device=device,
        )
        self.evaluator = SuiteEvaluator(
            scorer,
            Suite(ev.new_task.name, tuple(ev.new_task.tasks)),
            [Suite(s.name, tuple(s.tasks), s.weight) for s in ev.retention],
        )
        self.base_checksum = state_checksum(self.base.model)
        self._built = True

    def base_evaluation(self, study: optuna.Study) -> Evaluation:
        """Base-model scores, computed once per study and cached in its user attributes."""
        cached = study.user_attrs.get(ATTR_BASE_EVAL)
        if cached is not None:
            if study.user_attrs.get(ATTR_BASE_CHECKSUM) != self.base_checksum:
                raise StudyError(
                    f"the base model at {self.cfg.base_model_path} has changed since study "
                    f"{self.cfg.name!r} started; its gains and forgetting would not be comparable"
                )
            return Evaluation.from_dict(cached)
        self.reporter.phase("scoring the base model once for this study")
        evaluation = self.evaluator.evaluate(self.base.model)
        study.set_user_attr(ATTR_BASE_EVAL, evaluation.to_dict())
        study.set_user_attr(ATTR_BASE_CHECKSUM, self.base_checksum)
        return evaluation

    # ---- per trial -----------------------------------------------------------------------------
    def objective(self, trial: optuna.Trial, base_eval: Evaluation) -> list[float]:
        start = time.perf_counter()
        recipe = self.space.sample(trial, seed=self.cfg.seed).with_stamp()
        trial.set_user_attr(ATTR_RECIPE, recipe.to_dict())
        trial.set_user_attr("recipe_hash", recipe.content_hash)
        trial.set_user_attr("summary", recipe.summary())
        steps = self.trainer.settings.proxy_steps(recipe)
        self.reporter.trial_started(trial.number, recipe, steps)
        try:
            with self.trainer.train(recipe, progress=self.reporter.step) as (model, result):
                after = self.evaluator.evaluate(model)
        except TrialDiverged as exc:
            trial.set_user_attr(ATTR_FAILURE, f"diverged: {exc}")
            self._finish(trial.number, "PRUNED", {}, recipe, start, f"diverged: {exc}")
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            trial.set_user_attr(ATTR_FAILURE, reason)
            self._finish(trial.number, "FAIL", {}, recipe, start, reason)
            raise
        outcome = self.evaluator.outcome(base_eval, after)
        values = {
            "gain": outcome.gain,
            "forgetting": outcome.forgetting,
            "cost": result.full_update_flops / 1e12,
        }
        metrics = {
            **values,
            "forgetting_per_suite": dict(outcome.forgetting_per_suite),
            "suites_after": dict(after.suites),
            "tasks_after": {k: dict(v) for k, v in after.tasks.items()},
            "eval_seconds": round(after.seconds, 4),
            "train": result.as_metrics(),
            "trial_seconds": round(time.perf_counter() - start, 3),
        }
        trial.set_user_attr(ATTR_METRICS, metrics)
        self._finish(trial.number, "COMPLETE", values, recipe, start)
        return [values[o] for o in self.cfg.objectives]

    def _finish(
        self,
        number: int,
        state: str,
        values: dict[str, float],
        recipe: Recipe,
        start: float,
        reason: str | None = None,
    ) -> None:
        self.reporter.trial_finished(TrialSummary(number, state, values, recipe, time.perf_counter() - start, reason))

    # ---- the search ----------------------------------------------------------------------------
    def run(self, *, n_trials: int | None = None, timeout: float | None = None) -> optuna.Study:
        """Run (or resume) the study until it holds `n_trials` finished trials or `timeout` passes."""
        cfg = self.cfg
        n_trials = cfg.trials.n_trials if n_trials is None else n_trials
        timeout = cfg.trials.timeout if timeout is None else timeout
        # Everything that can fail on bad input (storage URL, model, data, eval tasks) is checked
        # before the storage is written to: a bad input leaves no study behind.
        check_storage(cfg)
        self.build()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        probe = open_study(cfg, self.space)
        _fail_interrupted_trials(probe, cfg.storage_url)
        finished = _n_finished(probe)
        # Re-seed on resume so the sampler does not replay the draws of the first session.
        sampler = create_sampler(cfg.sampler.name, cfg.seed + finished, cfg.sampler.n_startup_trials)
        study = open_study(cfg, self.space, sampler=sampler)
        remaining = None if n_trials is None else max(0, n_trials - finished)
        base_eval = self.base_evaluation(study)
        if remaining == 0:
            self.reporter.phase(f"study {cfg.name!r} already holds {finished} finished trials; nothing to run")
            return study
        if finished:
            self.reporter.phase(f"resuming study {cfg.name!r} at {finished} finished trials")
        study.optimize(
            lambda t: self.objective(t, base_eval),
            n_trials=remaining,
            timeout=timeout,
            catch=(RecipeOptError, RuntimeError, ValueError),
            gc_after_trial=True,
        )
        return study


def _n_finished(study: optuna.Study) -> int:
    """Trials that count towards the budget. Failed ones do not: a crash is not a measurement."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _fail_interrupted_trials(study: optuna.Study, url: str) -> None:
    """A trial left RUNNING by a killed single-process (SQLite) run is failed and re-queued.

    With SQLite only one process runs a study, so a RUNNING trial at start-up is a leftover.
    """
    if not url.startswith("sqlite"):
        return
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, ATTR_FAILURE, "interrupted: the process running it stopped")
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, skip_if_exists=False)
