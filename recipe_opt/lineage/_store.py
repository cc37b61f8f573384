"""The lineage store: `LineageStore` opens (and migrates) the database and owns sessions, every
write and every query over model families and versions, update cycles, recipes, selections,
evaluations, release decisions and proxy-vs-full fidelity records. Imports no torch.

Every write is one transaction: a failure leaves nothing half-written. Reads return plain frozen
dataclasses (`_views`), safe to use after the session closes. Row lookups live in `_rows`; the
writes of `apply` and `rollback` (a version's release) in `_releases`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from recipe_opt.exceptions import LineageError, first_line
from recipe_opt.lineage._migrate import head_revision, upgrade
from recipe_opt.lineage._models import (
    Evaluation,
    Family,
    FidelityRecord,
    ModelVersion,
    RecipeRecord,
    ReleaseDecision,
    Selection,
    UpdateCycle,
)
from recipe_opt.lineage._releases import _Releases
from recipe_opt.lineage._rows import (
    _check_family,
    _cycle_row,
    _family_row,
    _new_version,
    _producing_decision,
    _recipe_row,
    _version_row,
)
from recipe_opt.lineage._views import SelectionRecord, VersionInfo, _info
from recipe_opt.recipe import Recipe

__all__ = ["LineageStore"]


class LineageStore(_Releases):
    """Typed access to the `lineage_*` tables; migrates them to the current schema on open."""

    def __init__(self, url: str, *, engine: Engine | None = None, migrate: bool = True) -> None:
        self.url = url
        try:
            self.engine = engine or create_engine(url, future=True)
            self.migrated_from: str | None = None
            if migrate:
                before, after = upgrade(self.engine)
                if before != after:
                    self.migrated_from = before
        except SQLAlchemyError as exc:
            raise LineageError(f"cannot open the lineage store: {_db_error(exc)}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._open: Session | None = None  # the transaction `session()` has open, joined by nested calls

    @staticmethod
    def head() -> str:
        return head_revision()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back (nothing half-written) on error.

        Inside an open `session()` every method of the store joins that transaction, so several
        writes (and a caller's own, on the session it yields) commit together or not at all.
        """
        if self._open is not None:
            yield self._open
            return
        try:
            with self._sessions() as s, s.begin():
                self._open = s
                try:
                    yield s
                finally:
                    self._open = None
        except SQLAlchemyError as exc:
            raise LineageError(f"lineage store {self.url.split('://')[0]}: {_db_error(exc)}") from None

    # ---- model versions --------------------------------------------------------------------
    def ensure_version(
        self,
        family: str,
        name: str,
        *,
        weights_uri: str,
        weights_checksum: str | None = None,
        tier: str = "foundation",
        parent: str | None = None,
    ) -> int:
        """Register a version if absent; return its id. A known version must match its checksum.

        The first version of a family becomes its current version.
        """
        with self.session() as s:
            row = _version_row(s, family, name)
            if row is not None:
                if weights_checksum and row.weights_checksum and row.weights_checksum != weights_checksum:
                    raise LineageError(
                        f"model version {family}/{name} is registered with other weights "
                        f"(checksum {row.weights_checksum[:12]}, now {weights_checksum[:12]}): "
                        "register the changed model under a new version name"
                    )
                return row.id
            row = _new_version(
                s, family, name, weights_uri=weights_uri, weights_checksum=weights_checksum, tier=tier, parent=parent
            )
            fam = _family_row(s, family)
            if fam.current_version_id is None:
                fam.current_version = row
            return row.id

    def register_version(
        self,
        family: str,
        name: str,
        *,
        weights_uri: str,
        weights_checksum: str | None,
        tier: str = "foundation",
        parent: str | None = None,
        data_manifest: Mapping[str, Any] | None = None,
        description: str | None = None,
        make_current: bool = True,
    ) -> VersionInfo:
        """Enter a model that came from elsewhere (a new foundation release, say)."""
        with self.session() as s:
            if _version_row(s, family, name) is not None:
                raise LineageError(f"version {family}/{name} is already registered")
            row = _new_version(
                s,
                family,
                name,
                weights_uri=weights_uri,
                weights_checksum=weights_checksum,
                tier=tier,
                parent=parent,
                data_manifest=data_manifest,
                description=description,
            )
            fam = _family_row(s, family)
            previous = fam.current_version_id
            if make_current or previous is None:
                fam.current_version = row
            s.add(
                ReleaseDecision(
                    family=family,
                    action="register",
                    version=row,
                    previous_version_id=previous,
                    checks=[],
                    reasons=[description or "registered by hand"],
                    metrics={"made_current": bool(make_current or previous is None)},
                )
            )
            s.flush()
            return _info(s, row)

    def get_version(self, ref: str, family: str | None = None) -> VersionInfo:
        """A version by `family/name`, or by `name` when `family` is given or the name is unique."""
        if "/" in ref and family is None:
            family, _, ref = ref.rpartition("/")
        with self.session() as s:
            q = select(ModelVersion).where(ModelVersion.name == ref)
            if family is not None:
                q = q.where(ModelVersion.family == family)
            rows = list(s.scalars(q))
            if len(rows) > 1:
                fams = sorted(r.family for r in rows)
                raise LineageError(f"version {ref!r} exists in several families {fams}: write FAMILY/{ref}")
            if not rows:
                known = [f"{r.family}/{r.name}" for r in s.scalars(select(ModelVersion))]
                wanted = f"{family}/{ref}" if family else ref
                pool = known if family else [k.split("/", 1)[1] for k in known]
                close = difflib.get_close_matches(wanted, pool, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (f"; known: {', '.join(known)}" if known else "")
                raise LineageError(f"no model version {wanted!r} in the lineage store{hint}")
            return _info(s, rows[0])

    def list_versions(self, family: str | None = None) -> list[VersionInfo]:
        with self.session() as s:
            q = select(ModelVersion).order_by(ModelVersion.family, ModelVersion.id)
            if family is not None:
                _check_family(s, family)
                q = q.where(ModelVersion.family == family)
            return [_info(s, r) for r in s.scalars(q)]

    def list_versions_or_empty(self, family: str) -> list[VersionInfo]:
        """The family's versions; empty (no error) when the family is not recorded yet."""
        return self.list_versions(family) if family in self.families() else []

    def families(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Family.name).order_by(Family.name)))

    def current_version(self, family: str) -> VersionInfo | None:
        with self.session() as s:
            fam = s.scalar(select(Family).where(Family.name == family))
            return _info(s, fam.current_version) if fam and fam.current_version else None

    # ---- cycles ------------------------------------------------------------------------------
    def ensure_cycle(
        self,
        study_name: str,
        *,
        base_version_id: int,
        optuna_study_id: int | None,
        objectives: Mapping[str, str],
        data_manifest: Mapping[str, Any],
        search_space: Mapping[str, Any],
    ) -> int:
        with self.session() as s:
            row = _cycle_row(s, study_name)
            if row is not None:
                if row.base_version_id != base_version_id:
                    raise LineageError(f"study {study_name!r} already belongs to another base version in the lineage")
                return row.id
            row = UpdateCycle(
                study_name=study_name,
                base_version_id=base_version_id,
                optuna_study_id=optuna_study_id,
                objectives=dict(objectives),
                data_manifest=dict(data_manifest),
                search_space=dict(search_space),
            )
            s.add(row)
            s.flush()
            return row.id

    def cycle_base(self, study_name: str) -> tuple[str, str] | None:
        """(family, base version) of a recorded cycle."""
        with self.session() as s:
            row = _cycle_row(s, study_name)
            return (row.base_version.family, row.base_version.name) if row else None

    def producing_cycle(self, family: str, version: str) -> str | None:
        """The study whose selected recipe produced `version` (through `apply`), if any."""
        with self.session() as s:
            row = _producing_decision(s, family, version)
            return row.cycle.study_name if row is not None and row.cycle is not None else None

    def applied_version(self, study_name: str) -> VersionInfo | None:
        """The version the latest `apply` of this study registered (released or rejected), if any."""
        with self.session() as s:
            row = s.scalar(
                select(ReleaseDecision)
                .join(UpdateCycle, ReleaseDecision.cycle_id == UpdateCycle.id)
                .where(UpdateCycle.study_name == study_name, ReleaseDecision.action.in_(("release", "reject")))
                .order_by(ReleaseDecision.id.desc())
                .limit(1)
            )
            return _info(s, row.version) if row is not None else None

    def cycles(self, family: str) -> list[tuple[str, str, int | None]]:
        """(study, base version, selected trial or None) of every cycle of the family, oldest first."""
        with self.session() as s:
            out = []
            for c in s.scalars(
                select(UpdateCycle).join(ModelVersion).where(ModelVersion.family == family).order_by(UpdateCycle.id)
            ):
                out.append((c.study_name, c.base_version.name, c.selections[-1].trial_number if c.selections else None))
            return out

    def search_prices(self, family: str) -> dict[str, tuple[float | None, int | None]]:
        """Each cycle's search price as recorded at selection: study -> (proxy TFLOP, trials);
        (None, None) for a cycle selected before the lineage kept it (schema 0003)."""
        with self.session() as s:
            rows = s.scalars(select(UpdateCycle).join(ModelVersion).where(ModelVersion.family == family))
            return {c.study_name: (c.search_tflop, c.n_trials) for c in rows}

    def record_selection(
        self,
        cycle_id: int,
        recipe: Recipe,
        *,
        trial_number: int,
        rule: str,
        reason: str,
        policy: str = "gain-within-gates",
        values: Mapping[str, float],
        metrics: Mapping[str, Any],
        n_complete: int,
        search_tflop: float | None = None,
        n_trials: int | None = None,
    ) -> int:
        """Store the recipe (once per content hash) and the selection, in one transaction; the
        cycle keeps its trial counts and the search's price (proxy TFLOP of every trial and re-run)."""
        with self.session() as s:
            rec = _recipe_row(s, recipe)
            cycle = s.get(UpdateCycle, cycle_id)
            if cycle is None:
                raise LineageError(f"update cycle {cycle_id} does not exist")
            cycle.finished_at = datetime.now(UTC)
            cycle.n_complete = n_complete
            cycle.search_tflop = search_tflop
            cycle.n_trials = n_trials
            row = Selection(
                cycle=cycle,
                recipe=rec,
                trial_number=trial_number,
                policy=policy,
                rule=rule,
                reason=reason,
                gain=float(values["gain"]),
                forgetting=_opt_float(values.get("forgetting")),
                cost=_opt_float(values.get("cost")),
                metrics=dict(metrics),
            )
            s.add(row)
            s.flush()
            return row.id

    # ---- queries -----------------------------------------------------------------------------
    def latest_selection(self, study_name: str) -> SelectionRecord | None:
        with self.session() as s:
            row = s.scalar(
                select(Selection)
                .join(UpdateCycle)
                .where(UpdateCycle.study_name == study_name)
                .order_by(Selection.id.desc())
                .limit(1)
            )
            return SelectionRecord(row) if row is not None else None

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            return {
                m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
                for m in (
                    ModelVersion,
                    UpdateCycle,
                    RecipeRecord,
                    Selection,
                    Family,
                    Evaluation,
                    ReleaseDecision,
                    FidelityRecord,
                )
            }


def _db_error(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)  # the DB-API error, for statement errors
    return f"{type(exc).__name__}: {first_line(orig if orig is not None else exc) if str(orig or exc).strip() else ''}"


def _opt_float(v: float | None) -> float | None:
    return None if v is None else float(v)
