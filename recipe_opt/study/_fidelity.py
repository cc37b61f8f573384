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
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from recipe_opt.lineage import FidelityPair, LineageStore
from recipe_opt.registry import OBJECTIVES

__all__ = ["MIN_PAIRS", "FidelityReport", "fidelity_report", "rho_interval", "spearman"]


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


# Fewer recipes than this and a rank correlation says nothing: with 4, a perfect +1.00 arises by
# chance once in 24 orderings; and its interval would span most of [-1, 1].
MIN_PAIRS = 5


def rho_interval(rho: float, n: int, level: float = 0.90) -> tuple[float, float] | None:
    """Approximate `level` interval of Spearman's rho: Fisher's z with the standard error
    1.06 / sqrt(n - 3) that Fieller, Hartley and Pearson (1957) give for Spearman; None for n < 5."""
    if n < MIN_PAIRS:
        return None
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    half = statistics.NormalDist().inv_cdf(0.5 + level / 2) * 1.06 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class FidelityReport:
    family: str
    pairs: list[FidelityPair]
    rho: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)
    n: dict[str, int] = field(default_factory=dict)  # recipes measured both ways, per objective
    interval: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # 90%, when n >= 5
    cycles: int = 0  # the update cycles the recipes come from

    def describe(self, key: str) -> str:
        """One objective's figure in words: rho with n and its interval, or why there is none."""
        n, rho, ci = self.n.get(key, 0), self.rho.get(key), self.interval.get(key)
        if rho is None:
            return f"n/a (n = {n})"
        if ci is None:
            return f"{rho:+.2f} (n = {n}: too few to judge, needs {MIN_PAIRS})"
        return f"{rho:+.2f} (n = {n}, 90% interval {ci[0]:+.2f} to {ci[1]:+.2f})"


def fidelity_report(store: LineageStore, family: str, *, low: float = 0.5) -> FidelityReport:
    pairs = store.fidelity_pairs(family)
    rho: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    interval: dict[str, tuple[float, float] | None] = {}
    warnings: list[str] = []
    for key in OBJECTIVES.names():
        both = [(p.proxy[key], p.full[key]) for p in pairs if key in p.proxy and key in p.full]
        counts[key] = len(both)
        rho[key] = spearman([a for a, _ in both], [b for _, b in both])
        interval[key] = None if rho[key] is None else rho_interval(rho[key], len(both))  # type: ignore[arg-type]
        if rho[key] is not None and interval[key] is not None and rho[key] < low:  # type: ignore[operator]
            warnings.append(
                f"{key}: proxy and full-run ranks agree poorly (rho {rho[key]:+.2f} < {low:g}); "
                "raise proxy.fraction or drop evaluation.limit before trusting the next selection"
            )
    if len(pairs) < MIN_PAIRS:
        warnings.append(
            f"only {len(pairs)} recipe(s) of family {family!r} were run at both fidelities; a rank correlation "
            f"needs at least {MIN_PAIRS} to say anything (each `apply` adds one)"
        )
    cycles = len({p.cycle for p in pairs})
    if cycles > 1:
        warnings.append(
            f"the recipes come from {cycles} update cycles, each scored on its own base version and new tasks: "
            "across cycles the ranks compare unlike gains, so read the figure as a check of each pick, not of the proxy"
        )
    return FidelityReport(family, pairs, rho, warnings, counts, interval, cycles)
