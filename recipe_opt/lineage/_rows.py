"""Row helpers for the lineage store, used inside an open session.

Owns finding and creating rows: families, model versions (`_new_version` checks the tier and
the parent), update cycles and recipes (stored once per content hash), the evaluation rows of
suite scores, and the known-family check. They may flush but never commit: the caller's
`LineageStore.session()` owns the transaction. Imports no torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recipe_opt.exceptions import LineageError
from recipe_opt.lineage._models import (
    TIERS,
    Evaluation,
    Family,
    ModelVersion,
    RecipeRecord,
    ReleaseDecision,
    UpdateCycle,
)
from recipe_opt.lineage._views import SuiteScore
from recipe_opt.recipe import Recipe


def _version_row(s: Session, family: str, name: str) -> ModelVersion | None:
    return s.scalar(select(ModelVersion).where(ModelVersion.family == family, ModelVersion.name == name))


def _cycle_row(s: Session, study_name: str) -> UpdateCycle | None:
    return s.scalar(select(UpdateCycle).where(UpdateCycle.study_name == study_name))


def _producing_decision(s: Session, family: str, version: str) -> ReleaseDecision | None:
    """The latest `apply` decision (released or rejected) that registered `version`, if any."""
    return s.scalar(
        select(ReleaseDecision)
        .join(ModelVersion, ReleaseDecision.version_id == ModelVersion.id)
        .where(
            ModelVersion.family == family,
            ModelVersion.name == version,
            ReleaseDecision.action.in_(("release", "reject")),
        )
        .order_by(ReleaseDecision.id.desc())
        .limit(1)
    )


def _family_row(s: Session, family: str) -> Family:
    row = s.scalar(select(Family).where(Family.name == family))
    if row is None:
        row = Family(name=family)
        s.add(row)
        s.flush()
    return row


def _recipe_row(s: Session, recipe: Recipe) -> RecipeRecord:
    rec = s.scalar(select(RecipeRecord).where(RecipeRecord.content_hash == recipe.content_hash))
    if rec is None:
        rec = RecipeRecord(content_hash=recipe.content_hash, body=recipe.to_dict())
        s.add(rec)
        s.flush()
    return rec


def _evaluation(version: ModelVersion, cycle: UpdateCycle, sc: SuiteScore) -> Evaluation:
    return Evaluation(
        version=version,
        cycle_id=cycle.id,
        suite=sc.suite,
        kind=sc.kind,
        score=float(sc.score),
        tasks=dict(sc.tasks),
        backend=sc.backend,
    )


def _new_version(
    s: Session,
    family: str,
    name: str,
    *,
    weights_uri: str,
    weights_checksum: str | None,
    tier: str,
    parent: str | None,
    data_manifest: Mapping[str, Any] | None = None,
    description: str | None = None,
    status: str = "registered",
) -> ModelVersion:
    if tier not in TIERS:
        raise LineageError(f"`tier` must be one of {', '.join(TIERS)}, but got {tier!r}")
    parent_row = None
    if parent is not None:
        parent_row = _version_row(s, family, parent)
        if parent_row is None:
            raise LineageError(f"parent version {family}/{parent} is not registered")
    row = ModelVersion(
        family=family,
        name=name,
        parent=parent_row,
        tier=tier,
        weights_uri=weights_uri,
        weights_checksum=weights_checksum,
        status=status,
        data_manifest=dict(data_manifest) if data_manifest is not None else None,
        description=description,
    )
    s.add(row)
    s.flush()
    return row


def _check_family(s: Session, family: str) -> None:
    names = list(s.scalars(select(Family.name)))
    if family not in names:
        close = difflib.get_close_matches(family, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (f"; known: {', '.join(names)}" if names else "")
        raise LineageError(f"no model family {family!r} in the lineage store{hint}")
