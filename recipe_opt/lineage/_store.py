"""The lineage store: model versions, update cycles, recipes and selections. Imports no torch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from recipe_opt.exceptions import LineageError
from recipe_opt.lineage._models import Base, ModelVersion, RecipeRecord, Selection, UpdateCycle
from recipe_opt.recipe import Recipe

__all__ = ["LineageStore", "SelectionRecord"]


class SelectionRecord:
    """Plain-data view of a stored selection (safe to use after the session closes)."""

    def __init__(self, row: Selection) -> None:
        self.cycle = row.cycle.study_name
        self.base_version = row.cycle.base_version.name
        self.family = row.cycle.base_version.family
        self.trial_number = row.trial_number
        self.policy = row.policy
        self.rule = row.rule
        self.reason = row.reason
        self.recipe = Recipe.from_dict(row.recipe.body)
        self.values = {"gain": row.gain, "forgetting": row.forgetting, "cost": row.cost}


class LineageStore:
    """Typed access to the `lineage_*` tables in a study's database."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        try:
            self.engine = engine or create_engine(url, future=True)
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise LineageError(
                f"cannot open the lineage store: {type(exc).__name__}: {exc.args[0] if exc.args else ''}"
            ) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back (nothing half-written) on error."""
        with self._sessions() as s, s.begin():
            yield s

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
        """Register a version if absent; return its id. A known version must match its checksum."""
        with self.session() as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.family == family, ModelVersion.name == name))
            if row is not None:
                if weights_checksum and row.weights_checksum and row.weights_checksum != weights_checksum:
                    raise LineageError(
                        f"model version {family}/{name} is registered with other weights "
                        f"(checksum {row.weights_checksum[:12]}, now {weights_checksum[:12]}): "
                        "register the changed model under a new version name"
                    )
                return row.id
            parent_row = None
            if parent is not None:
                parent_row = s.scalar(
                    select(ModelVersion).where(ModelVersion.family == family, ModelVersion.name == parent)
                )
                if parent_row is None:
                    raise LineageError(f"parent version {family}/{parent} is not registered")
            row = ModelVersion(
                family=family,
                name=name,
                parent=parent_row,
                tier=tier,
                weights_uri=weights_uri,
                weights_checksum=weights_checksum,
            )
            s.add(row)
            s.flush()
            return row.id

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
            row = s.scalar(select(UpdateCycle).where(UpdateCycle.study_name == study_name))
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
    ) -> int:
        """Store the recipe (once per content hash) and the selection, in one transaction."""
        with self.session() as s:
            rec = s.scalar(select(RecipeRecord).where(RecipeRecord.content_hash == recipe.content_hash))
            if rec is None:
                rec = RecipeRecord(content_hash=recipe.content_hash, body=recipe.to_dict())
                s.add(rec)
                s.flush()
            cycle = s.get(UpdateCycle, cycle_id)
            if cycle is None:
                raise LineageError(f"update cycle {cycle_id} does not exist")
            cycle.finished_at = datetime.now(UTC)
            cycle.n_complete = n_complete
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
        from sqlalchemy import func

        with self.session() as s:
            return {
                m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
                for m in (ModelVersion, UpdateCycle, RecipeRecord, Selection)
            }


def _opt_float(v: float | None) -> float | None:
    return None if v is None else float(v)
