"""Proxy fidelity: does the proxy rank recipes the way the full update would?

Every `apply` stores the selected recipe's proxy values beside its full-run values in the lineage
(`bench/proxy_fidelity.py` measures K recipes both ways for the README, outside the lineage).
Across those pairs, Spearman's rank
correlation per objective says whether picking by proxy picks what the full run would: a rho
near 1 means the search's ranking transfers; below `low` (default 0.5) it does not, and the
proxy (fraction, eval limit) should be made more faithful before trusting the next selection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from recipe_opt.lineage import FidelityPair, LineageStore
from recipe_opt.registry import OBJECTIVES

__all__ = ["FidelityReport", "fidelity_report", "spearman"]


def _ranks(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties given the mean of the ranks they span."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson correlation of the ranks); None if n < 3 or a side is constant."""
    if len(x) != len(y):
        raise ValueError(f"`len(x) == len(y)` must hold, but got ({len(x)}, {len(y)})")
    if len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


@dataclass(frozen=True)
class FidelityReport:
    family: str
    pairs: list[FidelityPair]
    rho: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)


def fidelity_report(store: LineageStore, family: str, *, low: float = 0.5) -> FidelityReport:
    pairs = store.fidelity_pairs(family)
    rho: dict[str, float | None] = {}
    warnings: list[str] = []
    for key in OBJECTIVES.names():
        both = [(p.proxy[key], p.full[key]) for p in pairs if key in p.proxy and key in p.full]
        rho[key] = spearman([a for a, _ in both], [b for _, b in both])
        if rho[key] is not None and rho[key] < low:  # type: ignore[operator]
            warnings.append(
                f"{key}: proxy and full-run ranks agree poorly (rho {rho[key]:+.2f} < {low:g}); "
                "raise proxy.fraction or drop evaluation.limit before trusting the next selection"
            )
    if len(pairs) < 3:
        warnings.append(
            f"only {len(pairs)} recipe(s) of family {family!r} were run at both fidelities; "
            "rank correlation needs at least 3 (each `apply` adds one)"
        )
    return FidelityReport(family, pairs, rho, warnings)
