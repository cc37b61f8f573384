"""Lineage across update cycles (issue 4): families with a current version, per-suite
evaluations, release decisions, proxy-vs-full fidelity records; versions gain a data manifest.

Data: the 0.1 schema had no families and marked every version `current`; each family gets a row
whose current version is its first version marked `current`, and `current` becomes `registered`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lineage_model_versions") as batch:
        batch.add_column(sa.Column("data_manifest", sa.JSON()))
        batch.add_column(sa.Column("description", sa.Text()))
    op.create_table(
        "lineage_families",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("current_version_id", sa.Integer(), sa.ForeignKey("lineage_model_versions.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lineage_evaluations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("lineage_model_versions.id"), nullable=False),
        sa.Column("cycle_id", sa.Integer(), sa.ForeignKey("lineage_update_cycles.id")),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lineage_evaluations_version_id", "lineage_evaluations", ["version_id"])
    op.create_table(
        "lineage_release_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("family", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("lineage_model_versions.id"), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), sa.ForeignKey("lineage_model_versions.id")),
        sa.Column("cycle_id", sa.Integer(), sa.ForeignKey("lineage_update_cycles.id")),
        sa.Column("recipe_id", sa.Integer(), sa.ForeignKey("lineage_recipes.id")),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lineage_release_decisions_family", "lineage_release_decisions", ["family"])
    op.create_table(
        "lineage_fidelity",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("cycle_id", sa.Integer(), sa.ForeignKey("lineage_update_cycles.id"), nullable=False),
        sa.Column("recipe_id", sa.Integer(), sa.ForeignKey("lineage_recipes.id"), nullable=False),
        sa.Column("trial_number", sa.Integer()),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("proxy", sa.JSON(), nullable=False),
        sa.Column("full", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lineage_fidelity_cycle_id", "lineage_fidelity", ["cycle_id"])

    # Data: one family row per family, current = its first version that 0.1 marked `current`.
    conn = op.get_bind()
    versions = sa.table(
        "lineage_model_versions",
        sa.column("id", sa.Integer),
        sa.column("family", sa.String),
        sa.column("status", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    families = sa.table(
        "lineage_families",
        sa.column("name", sa.String),
        sa.column("current_version_id", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = conn.execute(
        sa.select(versions.c.family, sa.func.min(versions.c.id), sa.func.min(versions.c.created_at))
        .where(versions.c.status == "current")
        .group_by(versions.c.family)
    ).all()
    for family, first_id, created in rows:
        conn.execute(sa.insert(families).values(name=family, current_version_id=first_id, created_at=created))
    conn.execute(sa.update(versions).where(versions.c.status == "current").values(status="registered"))


def downgrade() -> None:
    for table in ("lineage_fidelity", "lineage_release_decisions", "lineage_evaluations", "lineage_families"):
        op.drop_table(table)
    with op.batch_alter_table("lineage_model_versions") as batch:
        batch.drop_column("description")
        batch.drop_column("data_manifest")
