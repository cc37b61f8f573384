"""Lineage store: model versions, update cycles, recipes and selections (SQLAlchemy, no torch)."""

from recipe_opt.lineage._models import Base, ModelVersion, RecipeRecord, Selection, UpdateCycle
from recipe_opt.lineage._store import LineageStore, SelectionRecord

__all__ = [
    "Base",
    "LineageStore",
    "ModelVersion",
    "RecipeRecord",
    "Selection",
    "SelectionRecord",
    "UpdateCycle",
]
