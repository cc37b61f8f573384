"""Lineage tables (SQLAlchemy 2.x typed models).

They live in the same database as the Optuna study. Optuna owns `alembic_version` and un-prefixed
names (`studies`, `trials`, ...), so every table here is prefixed `lineage_` and nothing of ours
touches Optuna's migration table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "ModelVersion", "RecipeRecord", "Selection", "UpdateCycle"]

TABLE_PREFIX = "lineage_"


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


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
    status: Mapped[str] = mapped_column(String(32), default="current")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

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
