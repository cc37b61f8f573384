"""The study's storage: the database, the Optuna study in it, and what must not change on resume.

`open_storage` gives Optuna's RDB storage with heartbeats (server databases) and a small pool;
`open_study` creates or resumes a study and refuses to resume under a changed config (the
fingerprint); `load_study` opens an existing one for `select`, `report`, `apply`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

import optuna
from optuna.storages import RDBStorage

from recipe_opt.config import StorageURL, StudyConfig, WorkersConfig
from recipe_opt.exceptions import StudyError, first_line
from recipe_opt.space import SearchSpace
from recipe_opt.study._attrs import (
    ATTR_CONFIG,
    ATTR_FAILURE,
    ATTR_FAILURE_KIND,
    ATTR_FINGERPRINT,
    ATTR_OBJECTIVES,
    ATTR_SPACE,
)
from recipe_opt.study._workers import _RetryLostTrial

__all__ = [
    "check_storage",
    "fail_interrupted_trials",
    "load_study",
    "open_storage",
    "open_study",
    "set_study_attr_in",
]


def check_storage(cfg: StudyConfig) -> None:
    """Fail early, writing nothing, if the study's database cannot be reached."""
    import sqlalchemy as sa

    db = cfg.database
    path = db.sqlite_path
    if db.is_sqlite:
        if path is not None and not path.parent.is_dir():
            raise StudyError(f"storage {db.display}: directory {path.parent} does not exist")
        return
    try:
        engine = sa.create_engine(db.url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # connection refused, bad credentials, unknown dialect, missing driver
        raise StudyError(
            f"storage {db.display}: cannot open ({type(exc).__name__}: {db.scrub(first_line(exc))})"
        ) from None


def load_study(cfg: StudyConfig) -> optuna.Study:
    """The study of `cfg` as it is in its storage (for `select`, `report`, `apply`, `dashboard`)."""
    db = cfg.database
    if not db.exists():
        raise StudyError(f"{cfg.config_path}: no study database at {db.sqlite_path} (run `recipe-opt search` first)")
    try:
        return optuna.load_study(study_name=cfg.name, storage=db.url)
    except KeyError:
        raise StudyError(f"{cfg.config_path}: study {cfg.name!r} not found in {db.display}") from None


def open_storage(db: StorageURL | str, workers: WorkersConfig, *, create_tables: bool, label: str) -> RDBStorage:
    """Optuna's RDB storage with heartbeats, retries and a small pool of checked connections.

    `create_tables=False` is for workers: the tables are created once, by `prepare` or `search`,
    before any worker starts (concurrent first-time creation is optuna#1092).
    """
    db = StorageURL(db) if isinstance(db, str) else db
    url, server = db.url, db.is_server
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if server:
        # A worker holds at most 3 connections: the main thread's session, the heartbeat thread's,
        # and the short advisory-lock one; pool_size 3 with no overflow keeps N workers at <= 3N
        # server connections (the README's 100-worker arithmetic). pool_pre_ping replaces a
        # connection the server dropped (restart, pg_terminate_backend) before it is used.
        engine_kwargs.update(pool_size=3, max_overflow=0, pool_timeout=60, pool_recycle=1800)
    if db.is_postgresql:
        # Visible in pg_stat_activity: which worker holds which connection.
        engine_kwargs["connect_args"] = {"application_name": f"recipe-opt {label}"[:63]}
    heartbeat: dict[str, Any] = {}
    if server:
        heartbeat = {
            "heartbeat_interval": workers.heartbeat_interval,
            "grace_period": workers.grace_period,
            "heartbeat_stale_trial_callback": _RetryLostTrial(workers.max_retry),
        }
    try:
        with warnings.catch_warnings():  # heartbeat_interval is "experimental": chosen knowingly
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create_tables, **heartbeat)
    except Exception as exc:  # SQLAlchemy connection errors, a missing DB driver (ImportError), bad URLs
        raise StudyError(
            f"storage {db.display}: cannot open ({type(exc).__name__}: {db.scrub(first_line(exc))})"
        ) from None


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
        storage = open_storage(cfg.database, cfg.workers, create_tables=create, label="study")
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
        study.set_user_attr(ATTR_OBJECTIVES, cfg.objectives)
        study.set_user_attr(ATTR_CONFIG, cfg.model_dump(mode="json", exclude={"config_path", "storage"}))
        study.set_user_attr(ATTR_SPACE, space.spec.model_dump(mode="json"))
    elif stored != fp:
        raise StudyError(
            f"study {cfg.name!r} was started with a different search space, sources, suites or "
            "proxy settings; resuming would mix incomparable trials: give the study a new name"
        )
    return study


def fail_interrupted_trials(study: optuna.Study, db: StorageURL, max_retry: int) -> None:
    """A trial left RUNNING by a killed single-process (SQLite) run is failed and re-queued.

    One process at a time runs a SQLite study (it holds the database's lock, `_lock`), so a
    RUNNING trial at start-up is a leftover. Its recipe is queued as a retry, which runs before
    recipes not yet started.
    """
    if db.is_server:
        return
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, ATTR_FAILURE, "interrupted: the process running it stopped")
        storage.set_trial_user_attr(t._trial_id, ATTR_FAILURE_KIND, "interrupted")
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        _RetryLostTrial(max_retry)(study, storage.get_trial(t._trial_id))


def set_study_attr_in(session: Any, study: optuna.Study, key: str, value: Any) -> bool:
    """Set a study user attribute inside `session`'s open transaction, so it commits (or rolls
    back) with the session's other writes. Returns False, writing nothing, when the study is not
    in the session's database (an in-memory study): the caller then sets it on its own.

    Written as Optuna's `RDBStorage.set_study_user_attr` writes it: one row of
    `study_user_attributes` per (study, key), the value as JSON.
    """
    import sqlalchemy as sa
    from optuna.storages._rdb.models import StudyUserAttributeModel

    storage = getattr(study._storage, "_backend", study._storage)  # under Optuna's _CachedStorage
    if not isinstance(storage, RDBStorage) or storage.engine.url != session.get_bind().url:
        return False
    table = StudyUserAttributeModel.__table__
    study_id = study._study_id
    session.execute(sa.delete(table).where(table.c.study_id == study_id, table.c.key == key))
    session.execute(sa.insert(table).values(study_id=study_id, key=key, value_json=json.dumps(value)))
    return True
