"""Plain-data read views of the lineage tables, and the row -> view conversion.

Owns what the store's reads return: `SelectionRecord`, `SuiteScore`, `DecisionInfo`,
`VersionInfo` and `FidelityPair`, plain objects safe to use after the session closes, and
`_info`, which builds a `VersionInfo` (with its decisions and evaluations) from a version row.
Imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recipe_opt.lineage._models import Evaluation, Family, ModelVersion, ReleaseDecision, Selection
from recipe_opt.recipe import Recipe

__all__ = [
    "DecisionInfo",
    "FidelityPair",
    "SelectionRecord",
    "SuiteScore",
    "VersionInfo",
]


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


@dataclass(frozen=True)
class SuiteScore:
    """A suite score as stored for a version: `kind` is "new" or "retention"."""

    suite: str
    kind: str
    score: float
    tasks: Mapping[str, Any]
    backend: str
    cycle: str | None


@dataclass(frozen=True)
class DecisionInfo:
    action: str  # release | reject | register | rollback
    family: str
    version: str
    previous: str | None
    cycle: str | None
    recipe_hash: str | None
    checks: list[dict[str, Any]]
    reasons: list[str]
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class VersionInfo:
    id: int
    family: str
    name: str
    parent: str | None
    tier: str
    status: str
    weights_uri: str
    weights_checksum: str | None
    data_manifest: dict[str, Any] | None
    description: str | None
    created_at: datetime
    is_current: bool
    decisions: list[DecisionInfo] = field(default_factory=list)
    evaluations: list[SuiteScore] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.family}/{self.name}"

    @property
    def decision(self) -> DecisionInfo | None:
        """How the version entered the lineage (release, reject or register), if recorded."""
        entry = [d for d in self.decisions if d.action in ("release", "reject", "register")]
        return entry[-1] if entry else None

    def task_scores(self, metric: str, *, cycle: str | None = None) -> dict[str, float]:
        """`metric` per task over this version's stored evaluations (those of `cycle` only, if
        given); a task scored in several evaluations keeps its first score."""
        out: dict[str, float] = {}
        for sc in self.evaluations:
            if cycle is None or sc.cycle == cycle:
                for task, metrics in sc.tasks.items():
                    if metric in metrics:
                        out.setdefault(task, float(metrics[metric]))
        return out


@dataclass(frozen=True)
class FidelityPair:
    """One recipe measured at proxy and full fidelity."""

    cycle: str
    recipe_hash: str
    trial_number: int | None
    origin: str
    proxy: dict[str, Any]
    full: dict[str, Any]


def _info(s: Session, row: ModelVersion) -> VersionInfo:
    fam = s.scalar(select(Family).where(Family.name == row.family))
    decisions = [
        DecisionInfo(
            action=d.action,
            family=d.family,
            version=d.version.name,
            previous=d.previous_version.name if d.previous_version else None,
            cycle=d.cycle.study_name if d.cycle else None,
            recipe_hash=d.recipe.content_hash if d.recipe else None,
            checks=list(d.checks),
            reasons=list(d.reasons),
            metrics=dict(d.metrics),
            created_at=d.created_at,
        )
        for d in s.scalars(
            select(ReleaseDecision).where(ReleaseDecision.version_id == row.id).order_by(ReleaseDecision.id)
        )
    ]
    evaluations = [
        SuiteScore(e.suite, e.kind, e.score, e.tasks, e.backend, e.cycle.study_name if e.cycle else None)
        for e in s.scalars(select(Evaluation).where(Evaluation.version_id == row.id).order_by(Evaluation.id))
    ]
    return VersionInfo(
        id=row.id,
        family=row.family,
        name=row.name,
        parent=row.parent.name if row.parent else None,
        tier=row.tier,
        status=row.status,
        weights_uri=row.weights_uri,
        weights_checksum=row.weights_checksum,
        data_manifest=row.data_manifest,
        description=row.description,
        created_at=row.created_at,
        is_current=bool(fam is not None and fam.current_version_id == row.id),
        decisions=decisions,
        evaluations=evaluations,
    )
