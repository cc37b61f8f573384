"""Lineage tables (SQLAlchemy 2.x typed models).

They live in the same database as the Optuna studies of a model family. Optuna owns
`alembic_version` and un-prefixed names (`studies`, `trials`, ...), so every table here is
prefixed `lineage_` and our Alembic migrations keep their revision in `lineage_alembic_version`
(see `recipe_opt/lineage/migrations`). Change a model here only together with a new migration:
a test compares these models with the migrated schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Evaluation",
    "Family",
    "FidelityRecord",
    "ModelVersion",
    "RecipeRecord",
    "ReleaseDecision",
    "Selection",
    "UpdateCycle",
]

TABLE_PREFIX = "lineage_"
VERSION_TABLE = TABLE_PREFIX + "alembic_version"

# Version statuses. `registered`: entered by hand or as a study's base; `released`: passed the
# release gates after `apply`; `rejected`: failed them (kept, with reasons, never current);
# `rolled-back`: was current and was rolled back.
STATUSES = ("registered", "released", "rejected", "rolled-back")
TIERS = ("foundation", "industrial", "application")


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class ModelVersion(Base):
    """One version of a model family (v0 = the deployed base); `parent` is what it was updated from."""

    __tablename__ = TABLE_PREFIX + "model_versions"
    __table_args__ = (UniqueConstraint("family", "name", name="uq_lineage_version_family_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey(TABLE_PREFIX + "model_versions.id"))
    tier: Mapped[str] = mapped_column(String(32), default="foundation")
    weights_uri: Mapped[str] = mapped_column(Text)
    weights_checksum: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="registered")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # Added in revision 0002: the data it was trained on (name -> path, sha256) and a free note.
    data_manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)

    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])
    cycles: Mapped[list[UpdateCycle]] = relationship(back_populates="base_version")


class RecipeRecord(Base):
    """A recipe, stored once per content hash."""

    __tablename__ = TABLE_PREFIX + "recipes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class UpdateCycle(Base):
    """One search for the update of `base_version`: the Optuna study and the data it used."""

    __tablename__ = TABLE_PREFIX + "update_cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(200), unique=True)
    optuna_study_id: Mapped[int | None] = mapped_column(Integer)
    base_version_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "model_versions.id"))
    objectives: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    search_space: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    n_complete: Mapped[int] = mapped_column(Integer, default=0)
    # The search's price: proxy TFLOP of every trial (pruned, failed) and re-run, and its trials.
    search_tflop: Mapped[float | None] = mapped_column(Float)
    n_trials: Mapped[int | None] = mapped_column(Integer)

    base_version: Mapped[ModelVersion] = relationship(back_populates="cycles")
    selections: Mapped[list[Selection]] = relationship(back_populates="cycle", order_by="Selection.id")


class Selection(Base):
    """The recipe a cycle selected, by which rule and why, with its proxy objective values."""

    __tablename__ = TABLE_PREFIX + "selections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "update_cycles.id"), index=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "recipes.id"))
    trial_number: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(String(64), default="gain-within-gates")
    rule: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    gain: Mapped[float] = mapped_column(Float)
    forgetting: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    cycle: Mapped[UpdateCycle] = relationship(back_populates="selections")
    recipe: Mapped[RecipeRecord] = relationship()


class Family(Base):
    """A model family and the version currently deployed (moved by releases and rollbacks)."""

    __tablename__ = TABLE_PREFIX + "families"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    current_version_id: Mapped[int | None] = mapped_column(ForeignKey(TABLE_PREFIX + "model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    current_version: Mapped[ModelVersion | None] = relationship()


class Evaluation(Base):
    """One suite score of one version, measured at full fidelity (every item, no `limit`)."""

    __tablename__ = TABLE_PREFIX + "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "model_versions.id"), index=True)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey(TABLE_PREFIX + "update_cycles.id"))
    suite: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # "new" or "retention"
    score: Mapped[float] = mapped_column(Float)
    tasks: Mapped[dict[str, Any]] = mapped_column(JSON)  # task -> every metric
    backend: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    version: Mapped[ModelVersion] = relationship()
    cycle: Mapped[UpdateCycle | None] = relationship()


class ReleaseDecision(Base):
    """What happened to a version and why: released, rejected (with the failed gates),
    registered by hand, or a rollback (version = the one made current again)."""

    __tablename__ = TABLE_PREFIX + "release_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(32))  # release | reject | register | rollback
    version_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "model_versions.id"))
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey(TABLE_PREFIX + "model_versions.id"))
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey(TABLE_PREFIX + "update_cycles.id"))
    recipe_id: Mapped[int | None] = mapped_column(ForeignKey(TABLE_PREFIX + "recipes.id"))
    checks: Mapped[list[Any]] = mapped_column(JSON)  # [{gate, measured, bound, passed}]
    reasons: Mapped[list[Any]] = mapped_column(JSON)  # one line per failed gate (or the note)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    version: Mapped[ModelVersion] = relationship(foreign_keys=[version_id])
    previous_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[previous_version_id])
    cycle: Mapped[UpdateCycle | None] = relationship()
    recipe: Mapped[RecipeRecord | None] = relationship()


class FidelityRecord(Base):
    """One recipe measured at proxy and at full fidelity: the data of `recipe-opt fidelity`."""

    __tablename__ = TABLE_PREFIX + "fidelity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "update_cycles.id"), index=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey(TABLE_PREFIX + "recipes.id"))
    trial_number: Mapped[int | None] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(32))  # "apply" or "benchmark"
    proxy: Mapped[dict[str, Any]] = mapped_column(JSON)  # gain, forgetting, cost (+ per suite)
    full: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    cycle: Mapped[UpdateCycle] = relationship()
    recipe: Mapped[RecipeRecord] = relationship()
