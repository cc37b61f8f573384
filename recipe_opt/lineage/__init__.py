"""Lineage store: model families and versions, update cycles, recipes, selections, evaluations,
release decisions and fidelity records (SQLAlchemy 2.x, Alembic migrations; imports no torch)."""

from recipe_opt.lineage._migrate import current_revision, head_revision, upgrade
from recipe_opt.lineage._models import (
    STATUSES,
    TIERS,
    Base,
    Evaluation,
    Family,
    FidelityRecord,
    ModelVersion,
    RecipeRecord,
    ReleaseDecision,
    Selection,
    UpdateCycle,
)
from recipe_opt.lineage._store import LineageStore
from recipe_opt.lineage._views import (
    DecisionInfo,
    FidelityPair,
    SelectionRecord,
    SuiteScore,
    VersionInfo,
)

__all__ = [
    "STATUSES",
    "TIERS",
    "Base",
    "DecisionInfo",
    "Evaluation",
    "Family",
    "FidelityPair",
    "FidelityRecord",
    "LineageStore",
    "ModelVersion",
    "RecipeRecord",
    "ReleaseDecision",
    "Selection",
    "SelectionRecord",
    "SuiteScore",
    "UpdateCycle",
    "VersionInfo",
    "current_revision",
    "head_revision",
    "upgrade",
]
