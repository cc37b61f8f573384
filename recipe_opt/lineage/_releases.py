"""The lineage store's release writes: the version an `apply` made (with its evaluations, the
proxy-vs-full record and the release decision), the fidelity pairs, and `rollback`.

A mixin of `LineageStore`, which owns the sessions: each method is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recipe_opt.exceptions import LineageError
from recipe_opt.lineage._models import (
    Evaluation,
    FidelityRecord,
    ModelVersion,
    ReleaseDecision,
    UpdateCycle,
)
from recipe_opt.lineage._rows import (
    _check_family,
    _cycle_row,
    _evaluation,
    _family_row,
    _new_version,
    _producing_decision,
    _recipe_row,
    _version_row,
)
from recipe_opt.lineage._views import FidelityPair, SuiteScore, VersionInfo, _info
from recipe_opt.recipe import Recipe

__all__: list[str] = []


class _Releases:
    # LineageStore's own `session()`, declared here for the type checker only.
    session: Callable[[], AbstractContextManager[Session]]

    # ---- apply: a new version with its evaluations and the release decision --------------------
    def record_apply(
        self,
        *,
        study_name: str,
        name: str,
        weights_uri: str,
        weights_checksum: str,
        tier: str | None,
        recipe: Recipe,
        trial_number: int | None,
        released: bool,
        checks: Sequence[Mapping[str, Any]],
        reasons: Sequence[str],
        metrics: Mapping[str, Any],
        parent_scores: Sequence[SuiteScore],
        scores: Sequence[SuiteScore],
        proxy: Mapping[str, Any],
        full: Mapping[str, Any],
    ) -> VersionInfo:
        """Register the version an `apply` produced, in one transaction: the version (parent =
        the cycle's base), both models' suite scores, the proxy-vs-full record, the release
        decision, and (if released) the family's current version."""
        with self.session() as s:
            cycle = _cycle_row(s, study_name)
            if cycle is None:
                raise LineageError(f"study {study_name!r} has no update cycle in the lineage (run `select` first)")
            parent = cycle.base_version
            family = parent.family
            if _version_row(s, family, name) is not None:
                raise LineageError(f"version {family}/{name} already exists: pass another version name")
            row = _new_version(
                s,
                family,
                name,
                weights_uri=weights_uri,
                weights_checksum=weights_checksum,
                tier=tier or parent.tier,
                parent=parent.name,
                data_manifest=cycle.data_manifest,
                description=f"apply of {study_name} trial {trial_number}",
                status="released" if released else "rejected",
            )
            rec = _recipe_row(s, recipe)
            have = {
                e.suite
                for e in s.scalars(
                    select(Evaluation).where(Evaluation.version_id == parent.id, Evaluation.cycle_id == cycle.id)
                )
            }
            for sc in parent_scores:
                if sc.suite not in have:  # the parent's scores are kept once per cycle and suite
                    s.add(_evaluation(parent, cycle, sc))
            for sc in scores:
                s.add(_evaluation(row, cycle, sc))
            s.add(
                FidelityRecord(
                    cycle=cycle,
                    recipe=rec,
                    trial_number=trial_number,
                    origin="apply",
                    proxy=dict(proxy),
                    full=dict(full),
                )
            )
            fam = _family_row(s, family)
            previous = fam.current_version_id
            s.add(
                ReleaseDecision(
                    family=family,
                    action="release" if released else "reject",
                    version=row,
                    previous_version_id=previous,
                    cycle=cycle,
                    recipe=rec,
                    checks=[dict(c) for c in checks],
                    reasons=list(reasons),
                    metrics=dict(metrics),
                )
            )
            if released:
                fam.current_version = row
            s.flush()
            return _info(s, row)

    def fidelity_pairs(self, family: str) -> list[FidelityPair]:
        with self.session() as s:
            _check_family(s, family)
            rows = s.scalars(
                select(FidelityRecord)
                .join(UpdateCycle)
                .join(ModelVersion, UpdateCycle.base_version_id == ModelVersion.id)
                .where(ModelVersion.family == family)
                .order_by(FidelityRecord.id)
            )
            return [
                FidelityPair(r.cycle.study_name, r.recipe.content_hash, r.trial_number, r.origin, r.proxy, r.full)
                for r in rows
            ]

    # ---- rollback ------------------------------------------------------------------------------
    def rollback(self, family: str, to: str | None = None) -> tuple[VersionInfo, VersionInfo]:
        """Make an ancestor of the current version current again (default: its parent).

        The version rolled back from is marked `rolled-back`; returns (from, to).
        """
        with self.session() as s:
            _check_family(s, family)
            fam = _family_row(s, family)
            current = fam.current_version
            if current is None:
                raise LineageError(f"family {family!r} has no current version")
            ancestors: list[ModelVersion] = []
            node = current.parent
            while node is not None:
                ancestors.append(node)
                node = node.parent
            if not ancestors:
                raise LineageError(f"{family}/{current.name} has no parent to roll back to")
            if to is None:
                target = ancestors[0]
            else:
                match = [a for a in ancestors if a.name == to]
                if not match:
                    chain = " -> ".join(a.name for a in ancestors)
                    raise LineageError(
                        f"`--to {to}` is not an ancestor of the current version {current.name} (ancestors: {chain})"
                    )
                target = match[0]
            current.status = "rolled-back"
            fam.current_version = target
            s.add(
                ReleaseDecision(
                    family=family,
                    action="rollback",
                    version=target,
                    previous_version_id=current.id,
                    checks=[],
                    reasons=[f"rolled back from {current.name} to {target.name}"],
                    metrics={},
                )
            )
            s.flush()
            return _info(s, current), _info(s, target)

    def producing_recipe(self, family: str, version: str) -> Recipe | None:
        """The recipe whose `apply` made `version` (released or rejected), if an `apply` did."""
        with self.session() as s:
            row = _producing_decision(s, family, version)
            return Recipe.from_dict(row.recipe.body) if row is not None and row.recipe is not None else None
