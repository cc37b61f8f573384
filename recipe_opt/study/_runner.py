"""The study: an Optuna multi-objective search whose trials are proxy fine-tunes.

Per trial: sample a `Recipe` from the search space -> proxy-train it -> evaluate -> objective
values (gain, forgetting, cost). Every trial stores its full recipe and all metrics as user
attributes, so the study in Optuna's storage is the complete record; selection and reports read
only from there.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import optuna
from optuna.storages import RDBStorage

from recipe_opt.config import GatesConfig, SourceConfig, StudyConfig
from recipe_opt.data import EncodedExample, encode_parsed, parse_rows, read_rows
from recipe_opt.evaluate import Evaluation, Suite, SuiteEvaluator, find_tasks, make_scorer
from recipe_opt.exceptions import ConfigError, RecipeOptError, StudyError, TrainingError
from recipe_opt.recipe import Recipe
from recipe_opt.space import SearchSpace
from recipe_opt.study._attrs import (
    ATTR_BASE_CHECKSUM,
    ATTR_BASE_EVAL,
    ATTR_BUDGET,
    ATTR_FAILURE,
    ATTR_FINGERPRINT,
    ATTR_METRICS,
    ATTR_ORIGIN,
    ATTR_PROXY_TFLOPS,
    ATTR_RECIPE,
    ATTR_RUNGS,
    is_prior,
)
from recipe_opt.study._workers import LoopOutcome, TrialLoop, WorkerInfo, count_trials, open_storage
from recipe_opt.train import (
    EarlyStop,
    ProxySettings,
    ProxyTrainer,
    RungFn,
    TrainingData,
    TrainResult,
    TrialInterrupted,
    TrialStopped,
    load_base_model,
    resolve_target_sets,
    state_checksum,
)

__all__ = [
    "ATTR_BASE_EVAL",
    "ATTR_FAILURE",
    "ATTR_METRICS",
    "ATTR_ORIGIN",
    "ATTR_PROXY_TFLOPS",
    "ATTR_RECIPE",
    "ATTR_RUNGS",
    "SearchReporter",
    "StudyRunner",
    "TrialSummary",
    "check_storage",
    "create_sampler",
    "data_manifest",
    "file_sha256",
    "gate_values",
    "is_prior",
    "open_study",
    "proxy_compute",
    "resolve_base_model",
]


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


@dataclass
class Measurement:
    """One proxy run of one recipe: objective values, per-suite forgetting, all metrics."""

    values: dict[str, float]
    forgetting_per_suite: dict[str, float]
    metrics: dict[str, Any]
    result: TrainResult


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str
    values: dict[str, float]
    recipe: Recipe | None
    seconds: float
    reason: str | None = None
    worker: str | None = None  # set when the trial ran in another process (`search --workers N`)


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
        import warnings

        with warnings.catch_warnings():  # "experimental since v3.0": chosen knowingly in the config
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
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


def resolve_base_model(cfg: StudyConfig, *, migrate: bool = True) -> StudyConfig:
    """`cfg` with `base_model` as a local checkpoint directory.

    `lineage` (or `lineage:VERSION`) takes the weights location the lineage store records for
    `base_version` (or VERSION) of the study's family; a hub id (`org/name`, not a directory) is
    downloaded into the Hugging Face cache (the config, tokenizer and weight files only). Either
    failing is a `ConfigError` naming `base_model`, before anything is written. Workers pass
    `migrate=False`: they read the lineage store, and only `prepare` creates or migrates it.
    """
    source = str(cfg.config_path or "<study>")
    kind = cfg.base_model_kind
    if kind == "dir":
        return cfg
    if kind == "lineage":
        from recipe_opt.lineage import LineageStore

        ref = cfg.base_model.removeprefix("lineage").removeprefix(":") or cfg.base_version
        url = cfg.storage_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            raise ConfigError.single(
                source, "base_model", f"{cfg.base_model!r}: no lineage store at {url.removeprefix('sqlite:///')}"
            )
        try:
            with LineageStore(url, migrate=migrate) as store:
                version = store.get_version(ref, family=cfg.family)
        except RecipeOptError as exc:
            raise ConfigError.single(source, "base_model", f"{cfg.base_model!r}: {exc}") from None
        path = Path(version.weights_uri)
        if not (path / "config.json").is_file():
            raise ConfigError.single(
                source, "base_model", f"lineage version {version.ref} has its weights at {path}: not a checkpoint here"
            )
        return cfg.model_copy(update={"base_model": str(path)})
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
        if cfg.trust_remote_code:
            patterns.append("*.py")  # the architecture's own code, only when the config allows running it
        local = snapshot_download(cfg.base_model, allow_patterns=patterns)
    except Exception as exc:  # offline, unknown repo, gated model: one line with the hub's reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError.single(
            source,
            "base_model",
            f"{cfg.base_model!r} is not a directory ({cfg.base_model_path}) and cannot be fetched from the "
            f"Hugging Face hub: {first}",
        ) from None
    update: dict[str, Any] = {"base_model": local}
    if cfg.apply.weights_dir is None:
        # Never beside the base (that is the hub cache): new versions go to models/ beside the config.
        update["apply"] = cfg.apply.model_copy(update={"weights_dir": str(cfg.base_dir / "models")})
    return cfg.model_copy(update=update)


def data_manifest(cfg: StudyConfig) -> dict[str, dict[str, str]]:
    """Path and sha256 of every data file (for a `datasets` source: its name, subset and split):
    what the lineage records the cycle was run on."""
    out: dict[str, dict[str, str]] = {}
    for group in ("new", "replay"):
        for name, src in getattr(cfg.sources, group).items():
            file = cfg.source_path(src)
            if file is not None:
                out[f"{group}/{name}"] = {"path": str(file), "sha256": file_sha256(file)}
            else:
                out[f"{group}/{name}"] = {"dataset": str(src.dataset), "subset": str(src.subset), "split": src.split}
    return out


_SOURCE_DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "subset": None,
    "split": "train",
    "format": "auto",
    "columns": {},
    "bad_rows": "error",
}
_SYSTEMS_OPTIONS = {"device", "mixed_precision", "gradient_accumulation_steps", "gradient_checkpointing"}


def _fingerprint(cfg: StudyConfig, space: SearchSpace) -> str:
    """What must not change when a study is resumed: objectives, space, sources, suites, proxy."""
    # Options added after 0.2 enter the fingerprint only when set away from their defaults, so a
    # study written before them still resumes. The proxy's systems options (device, precision,
    # accumulation, checkpointing) never enter it: they change speed and memory, not the recipe.
    sources = cfg.sources.model_dump(mode="json")
    for group in sources.values():
        for src in group.values():
            for key, default in _SOURCE_DEFAULTS.items():
                if src.get(key) == default:
                    src.pop(key)
    evaluation = cfg.evaluation.model_dump(mode="json", exclude={"batch_size"})
    if not evaluation.get("lm_eval"):
        evaluation.pop("lm_eval", None)
    body = {
        "objectives": cfg.objectives,
        "space": space.spec.model_dump(mode="json"),
        "sources": sources,
        "evaluation": evaluation,
        "proxy": cfg.proxy.model_dump(mode="json", exclude=_SYSTEMS_OPTIONS),
        "seed": cfg.seed,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def open_study(
    cfg: StudyConfig,
    space: SearchSpace,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    storage: RDBStorage | None = None,
    create: bool = True,
) -> optuna.Study:
    """Create the study, or load it to resume; refuses to resume under a changed config.

    `create=False` (workers) only joins a study that `prepare` or `search` created.
    """
    if storage is None:
        storage = open_storage(cfg.storage_url, cfg.workers, create_tables=create, label="study")
    if create:
        study = optuna.create_study(
            study_name=cfg.name,
            storage=storage,
            directions=cfg.directions(),
            sampler=sampler,
            load_if_exists=True,
        )
    else:
        try:
            study = optuna.load_study(study_name=cfg.name, storage=storage, sampler=sampler)
        except KeyError:
            raise StudyError(
                f"study {cfg.name!r} not found in {cfg.storage_display}: workers join a study that "
                "`recipe-opt prepare` (or `search --workers N`) created first"
            ) from None
    if [d.name.lower() for d in study.directions] != cfg.directions():
        raise StudyError(
            f"study {cfg.name!r} in {cfg.storage_display} has directions "
            f"{[d.name.lower() for d in study.directions]}, the config asks {cfg.directions()}: "
            "use a new study name"
        )
    fp = _fingerprint(cfg, space)
    stored = study.user_attrs.get(ATTR_FINGERPRINT)
    if stored is None and create:
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
        self.first_new_trial = 0

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
        self.base = load_base_model(cfg.base_model_path, device=device, trust_remote_code=cfg.trust_remote_code)
        # The space's target-module sets, resolved against this model (markers expanded, names
        # checked): every recipe, fingerprint and warm start then sees concrete module names.
        model_type = getattr(self.base.model.config, "model_type", "?")
        self.space = self.space.with_target_sets(
            resolve_target_sets(
                self.base.model,
                self.space.spec.target_module_sets,
                source=self.space.source_file,
                model_ref=f"the {model_type} model at {cfg.base_model_path}",
            )
        )
        tok, max_len = self.base.tokenizer, cfg.proxy.max_seq_len

        self.reporter.phase("reading and tokenising data sources")

        def encoded(group: str, name: str, src: SourceConfig) -> list[EncodedExample]:
            path = cfg.source_path(src)
            rows = read_rows(path, dataset=src.dataset, subset=src.subset, split=src.split)
            parsed = parse_rows(name, rows, format=src.format, columns=src.columns, bad_rows=src.bad_rows)
            if parsed.bad.total:
                # Never dropped silently: the count, the reasons and the first place of each.
                self.reporter.phase(
                    f"sources.{group}.{name}: left out {parsed.bad.total} of {parsed.rows} rows: {parsed.bad.summary()}"
                )
            self.data_report[f"{group}/{name}"] = {
                "format": parsed.format,
                "rows": parsed.rows,
                "bad_rows": parsed.bad.total,
                "bad_reasons": dict(parsed.bad.counts),
            }
            where = f"sources.{group}.{name} ({path if path is not None else src.dataset})"
            return encode_parsed(tok, parsed, max_seq_len=max_len, where=where)

        self.data_report: dict[str, dict[str, Any]] = {}
        new = {name: encoded("new", name, src) for name, src in cfg.sources.new.items()}
        replay = {name: encoded("replay", name, src) for name, src in cfg.sources.replay.items()}
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
            explode_factor=cfg.proxy.explode_factor,
            device=device,
            mixed_precision=cfg.proxy.mixed_precision,
            grad_accumulation=cfg.proxy.gradient_accumulation_steps,
            gradient_checkpointing=cfg.proxy.gradient_checkpointing,
        )
        self.trainer = ProxyTrainer(self.base, data, settings)

        ev = cfg.evaluation
        self.reporter.phase(f"building eval tasks ({ev.backend})")
        names = list(dict.fromkeys([*ev.new_task.tasks, *(t for s in ev.retention for t in s.tasks)]))
        self.tasks = find_tasks(cfg.tasks_dir_path, names, cfg.data_root_path)
        self.evaluator = self.make_evaluator(ev.backend, ev.limit)
        # Rungs score with the native scorer when the tasks allow it: the same metric as lm-eval
        # (a test checks they agree exactly) at a seventh of the cost.
        self.rung_evaluator = self.evaluator
        if cfg.early_stopping.enabled and ev.backend != "native":
            # Tasks the native scorer cannot render keep the configured backend at the rungs.
            with contextlib.suppress(RecipeOptError):
                self.rung_evaluator = self.make_evaluator("native", ev.limit)
        self.base_checksum = state_checksum(self.base.model)
        self._built = True

    def release(self) -> None:
        """Free the base model and evaluators (and their GPU memory); `build` makes them again."""
        if not self._built:
            return
        import torch

        for name in ("base", "trainer", "evaluator", "rung_evaluator"):
            self.__dict__.pop(name, None)
        self._built = False
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def make_evaluator(self, backend: str, limit: int | None) -> SuiteEvaluator:
        """An evaluator over the study's suites (`limit=None`: every item, as at full fidelity)."""
        ev = self.cfg.evaluation
        scorer = make_scorer(
            backend,
            self.tasks,
            self.base.tokenizer,
            pad_id=self.base.pad_id,
            max_seq_len=self.cfg.proxy.max_seq_len,
            batch_size=ev.batch_size,
            limit=limit,
            device=self.device,
            lm_eval_options=ev.lm_eval,
        )
        return SuiteEvaluator(
            scorer,
            Suite(ev.new_task.name, tuple(ev.new_task.tasks)),
            [Suite(s.name, tuple(s.tasks), s.weight) for s in ev.retention],
        )

    def full_trainer(self, recipe: Recipe) -> ProxyTrainer:
        """A trainer that runs `recipe` at full fidelity: every step of its budget at its batch size."""
        settings = replace(self.trainer.settings, fraction=1.0, batch_size=recipe.budget.batch_size, min_steps=1)
        return ProxyTrainer(self.base, self.trainer.data, settings)

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
    def measure(
        self, recipe: Recipe, base_eval: Evaluation, *, rungs: Mapping[int, RungFn] | None = None
    ) -> Measurement:
        """Train `recipe` by proxy, evaluate it, and derive its objective values (no Optuna)."""
        with self.trainer.train(recipe, progress=self.reporter.step, rungs=rungs) as (model, result):
            after = self.evaluator.evaluate(model)
        outcome = self.evaluator.outcome(base_eval, after)
        values = {"gain": outcome.gain, "forgetting": outcome.forgetting, "cost": result.full_update_flops / 1e12}
        metrics = {
            **values,
            "forgetting_per_suite": dict(outcome.forgetting_per_suite),
            "suites_after": dict(after.suites),
            "tasks_after": {k: dict(v) for k, v in after.tasks.items()},
            "eval_seconds": round(after.seconds, 4),
            "train": result.as_metrics(),
        }
        return Measurement(values, dict(outcome.forgetting_per_suite), metrics, result)

    def objective(self, trial: optuna.Trial, base_eval: Evaluation) -> list[float]:
        start = time.perf_counter()
        recipe = self.space.sample(trial, seed=self.cfg.seed).with_stamp()
        # The sampler works at the first `suggest_*`, so this is its time (GP fit included).
        sampling_seconds = time.perf_counter() - start
        trial.set_user_attr(ATTR_RECIPE, recipe.to_dict())
        trial.set_user_attr("recipe_hash", recipe.content_hash)
        trial.set_user_attr("summary", recipe.summary())
        self.reporter.trial_started(trial.number, recipe, self.trainer.settings.proxy_steps(recipe))
        try:
            m = self.measure(recipe, base_eval, rungs=self._rung_callbacks(trial, recipe))
        except TrialInterrupted as exc:
            # Diverged or stopped at a rung: pruned, with the reason and the compute it used.
            kind = "stopped early" if isinstance(exc, TrialStopped) else "diverged"
            trial.set_user_attr(ATTR_FAILURE, f"{kind}: {exc.reason}")
            trial.set_user_attr(ATTR_PROXY_TFLOPS, exc.result.proxy_flops / 1e12)
            self._finish(trial.number, "PRUNED", {}, recipe, start, f"{kind}: {exc.reason}")
            raise optuna.TrialPruned(f"{kind}: {exc.reason}") from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            trial.set_user_attr(ATTR_FAILURE, reason)
            self._finish(trial.number, "FAIL", {}, recipe, start, reason)
            raise
        for key, value in gate_values(m.values, m.forgetting_per_suite, self.cfg.gates).items():
            trial.set_constraint(key, value)
        m.metrics["sampling_seconds"] = round(sampling_seconds, 4)
        m.metrics["trial_seconds"] = round(time.perf_counter() - start, 3)
        trial.set_user_attr(ATTR_METRICS, m.metrics)
        trial.set_user_attr(ATTR_PROXY_TFLOPS, m.result.proxy_flops / 1e12)
        self._finish(trial.number, "COMPLETE", m.values, recipe, start)
        return [m.values[o] for o in self.cfg.objectives]

    # ---- rung-based early stopping -------------------------------------------------------------
    def _rung_callbacks(self, trial: optuna.Trial, recipe: Recipe) -> dict[int, RungFn]:
        es = self.cfg.early_stopping
        if not es.enabled:
            return {}
        steps = self.trainer.settings.proxy_steps(recipe)
        callbacks: dict[int, RungFn] = {}
        for fraction in es.rungs:
            step = max(1, round(fraction * steps))
            if step < steps:
                callbacks[step] = self._make_rung(trial, f"{fraction:g}")
        return callbacks

    def _make_rung(self, trial: optuna.Trial, key: str) -> RungFn:
        def at_rung(step: int, model: Any, partial: TrainResult) -> None:
            after = self.rung_evaluator.evaluate(model)
            outcome = self.rung_evaluator.outcome(self.rung_base, after)
            values = {"gain": outcome.gain, "forgetting": outcome.forgetting, "cost": partial.full_update_flops / 1e12}
            rungs = dict(trial.user_attrs.get(ATTR_RUNGS, {}))
            rungs[key] = {**values, "step": step}
            trial.set_user_attr(ATTR_RUNGS, rungs)
            peers = [
                t.user_attrs[ATTR_RUNGS][key]
                for t in trial.study.get_trials(deepcopy=False)
                if t.number != trial.number and key in t.user_attrs.get(ATTR_RUNGS, {})
            ]
            es = self.cfg.early_stopping
            if len(peers) < es.min_trials_at_rung:
                return
            mine = [values[o] for o in self.cfg.objectives]
            dominating = sum(
                _dominates([p[o] for o in self.cfg.objectives], mine, self.cfg.directions()) for p in peers
            )
            if dominating >= es.min_dominating:
                raise EarlyStop(
                    f"dominated by {dominating} of {len(peers)} trials at rung {key} (step {step}: gain "
                    f"{values['gain']:+.3f}, forgetting {values['forgetting']:+.3f})"
                )

        return at_rung

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

    def _seed_new_study(self, study: optuna.Study, warm: WarmStartPlan | None) -> None:
        """Warm-start recipes first, then the informed design fills the rest of its slots."""
        n_warm = 0
        if warm is not None:
            for note in warm.notes:
                self.reporter.phase(f"warm start: {note}")
            if warm.priors:
                study.add_trials(warm.priors)
            for params, origin in warm.enqueue:
                _seed(study, params, origin)
            n_warm = len(warm.enqueue)
            self.reporter.phase(f"warm start: {n_warm} recipes enqueued, {len(warm.priors)} prior observations added")
        if self.cfg.sampler.initial_design == "informed":
            design = self.space.informed_design()
            for params in design[: max(0, len(design) - n_warm)]:
                _seed(study, params, "informed initial design")

    def prepare(
        self,
        *,
        n_trials: int | None = None,
        warm_start: Callable[[], WarmStartPlan] | None = None,
    ) -> optuna.Study:
        """Everything before the first trial, done once per study: tables, study, seeds, base scores.

        Creates Optuna's and the lineage store's tables (never by workers: concurrent first-time
        creation fails, optuna#1092), the study with its queued warm-start and informed-design
        recipes, and the base model's scores. Records the trial budget (`n_trials` or the config's)
        in the study, where every worker reads it. Everything that can fail on bad input (storage
        URL, model, data, eval tasks) is checked before the storage is written to.
        """
        cfg = self.cfg
        check_storage(cfg)
        self.build()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = open_storage(cfg.storage_url, cfg.workers, create_tables=True, label="coordinator")
        study = open_study(cfg, self.space, storage=self.storage)
        # Per source: the format read, the rows, and the rows left out (with why), for the record.
        study.set_user_attr("data", self.data_report)
        self._note_lineage()  # opens (and creates or migrates) the lineage tables, before any worker
        _fail_interrupted_trials(study, cfg.storage_url)
        budget = cfg.trials.n_trials if n_trials is None else n_trials
        if budget is not None or ATTR_BUDGET not in study.user_attrs:
            study.set_user_attr(ATTR_BUDGET, budget)
        if not study.trials:
            self._seed_new_study(study, warm_start() if warm_start else None)
        elif warm_start is not None:
            self.reporter.phase("warm start skipped: it seeds a new study, and this one is being resumed")
        self.base_evaluation(study)
        return study

    def attach(self, worker: WorkerInfo | None = None) -> optuna.Study:
        """Join a prepared study (a worker): its tables, study and base scores must exist."""
        cfg = self.cfg
        check_storage(cfg)
        self.build()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        label = f"worker {worker.id}" if worker else "worker"
        try:
            self.storage = open_storage(cfg.storage_url, cfg.workers, create_tables=False, label=label)
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
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StudyError(f"storage {cfg.storage_display}: cannot load study {cfg.name!r} ({first})") from None
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
        finished, _ = count_trials(study)
        # Re-seed per worker and on resume, so no two workers and no resumed run replay the draws
        # of another (the in-process search keeps seed + finished, as before workers existed).
        offset = worker.seed_offset() if worker else 0
        study.sampler = create_sampler(cfg.sampler.name, cfg.seed + finished + offset, cfg.sampler.n_startup_trials)
        budget = study.user_attrs.get(ATTR_BUDGET)
        timeout = cfg.trials.timeout if timeout is None else timeout
        max_cost = cfg.trials.max_cost if max_cost is None else max_cost
        # Trials numbered from here on are this run's (earlier ones, and re-queued leftovers of an
        # interrupted run, are not): the CLI's exit status counts only this run's failures.
        self.first_new_trial = (
            max((t.number for t in study.trials if t.state != optuna.trial.TrialState.WAITING), default=-1) + 1
        )
        base_eval = self.base_evaluation(study)
        self.rung_base = (
            base_eval if self.rung_evaluator is self.evaluator else self.rung_evaluator.evaluate(self.base.model)
        )
        if budget is not None and finished >= budget:
            self.reporter.phase(f"study {cfg.name!r} already holds {finished} finished trials; nothing to run")
            return LoopOutcome()
        if finished:
            self.reporter.phase(f"resuming study {cfg.name!r} at {finished} finished trials")
        loop = TrialLoop(
            study,
            self.storage,
            lambda t: self.objective(t, base_eval),
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
        warm_start: Callable[[], WarmStartPlan] | None = None,
    ) -> optuna.Study:
        """Prepare (or resume) the study and run it in this process until it holds `n_trials`
        finished trials, `timeout` seconds pass, or its proxy compute reaches `max_cost` TFLOP."""
        study = self.prepare(n_trials=n_trials, warm_start=warm_start)
        self.outcome = self.work(study, timeout=timeout, max_cost=max_cost)
        return study


class WarmStartPlan(Protocol):
    """What `run` needs of a warm start (see `recipe_opt.study.plan_warm_start`)."""

    enqueue: list[tuple[dict[str, Any], str]]
    priors: list[optuna.trial.FrozenTrial]
    notes: list[str]


def _seed(study: optuna.Study, params: dict[str, Any], origin: str) -> None:
    study.enqueue_trial(params, user_attrs={ATTR_ORIGIN: origin})


def _dominates(a: list[float], b: list[float], directions: list[Literal["maximize", "minimize"]]) -> bool:
    """a dominates b: at least as good on every objective and better on one."""
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        if d == "minimize":
            x, y = -x, -y
        if x < y:
            return False
        better = better or x > y
    return better


def gate_values(values: Mapping[str, float], per_suite: Mapping[str, float], gates: GatesConfig) -> dict[str, float]:
    """Constraint values of the release gates: measured minus bound, so <= 0 means the gate passes."""
    out: dict[str, float] = {}
    if gates.max_forgetting is not None:
        out["max_forgetting"] = values["forgetting"] - gates.max_forgetting
    for suite, bound in gates.max_forgetting_per_suite.items():
        out[f"max_forgetting:{suite}"] = per_suite[suite] - bound
    if gates.min_gain is not None:
        out["min_gain"] = gates.min_gain - values["gain"]
    if gates.max_cost is not None:
        out["max_cost"] = values["cost"] - gates.max_cost
    return out


def proxy_compute(study: optuna.Study) -> float:
    """TFLOP the study's proxies have spent so far, pruned and failed trials included."""
    return sum(float(t.user_attrs.get(ATTR_PROXY_TFLOPS, 0.0)) for t in study.get_trials(deepcopy=False))


def _n_finished(study: optuna.Study) -> int:
    """Trials that count towards the budget. Failed ones do not: a crash is not a measurement."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(not is_prior(t) for t in study.get_trials(deepcopy=False, states=states))


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
