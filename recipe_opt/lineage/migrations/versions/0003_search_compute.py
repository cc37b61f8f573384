"""The price of each cycle's search (issue 17): the proxy compute it spent (every trial, pruned
and failed included, plus selection re-runs) and its trials, beside the pick in the family report.

Data: cycles recorded before this revision have no figure (NULL): it was never stored, and the
Optuna study that could tell may be gone; the family report says "not recorded".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lineage_update_cycles") as batch:
        batch.add_column(sa.Column("search_tflop", sa.Float()))
        batch.add_column(sa.Column("n_trials", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("lineage_update_cycles") as batch:
        batch.drop_column("n_trials")
        batch.drop_column("search_tflop")
