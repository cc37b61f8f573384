"""The lineage schema of recipe-opt 0.1 (issue 2): versions, cycles, recipes, selections.

Databases written before migrations existed hold exactly these tables, made by `create_all`;
`upgrade()` in recipe_opt.lineage stamps them at this revision instead of creating them again.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lineage_model_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("family", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("lineage_model_versions.id")),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("weights_uri", sa.Text(), nullable=False),
        sa.Column("weights_checksum", sa.String(64)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("family", "name", name="uq_lineage_version_family_name"),
    )
    op.create_index("ix_lineage_model_versions_family", "lineage_model_versions", ["family"])
    op.create_table(
        "lineage_recipes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lineage_update_cycles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_name", sa.String(200), nullable=False, unique=True),
        sa.Column("optuna_study_id", sa.Integer()),
        sa.Column("base_version_id", sa.Integer(), sa.ForeignKey("lineage_model_versions.id"), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=False),
        sa.Column("data_manifest", sa.JSON(), nullable=False),
        sa.Column("search_space", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("n_complete", sa.Integer(), nullable=False),
    )
    op.create_table(
        "lineage_selections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("cycle_id", sa.Integer(), sa.ForeignKey("lineage_update_cycles.id"), nullable=False),
        sa.Column("recipe_id", sa.Integer(), sa.ForeignKey("lineage_recipes.id"), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=False),
        sa.Column("forgetting", sa.Float()),
        sa.Column("cost", sa.Float()),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lineage_selections_cycle_id", "lineage_selections", ["cycle_id"])


def downgrade() -> None:
    for table in ("lineage_selections", "lineage_update_cycles", "lineage_recipes", "lineage_model_versions"):
        op.drop_table(table)
