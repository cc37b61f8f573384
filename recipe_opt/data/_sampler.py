"""Batches drawn to a recipe's mixture and replay ratio.

Each batch position is assigned to a source by systematic apportionment, not by independent coin
flips: the running count of every source stays within one example of its target share at every
step. With batch 32 and replay 0.07, independent draws would give a batch with no replay about
10% of the time (0.93**32 = 0.098); apportionment gives 2 or 3 in every batch, 2.24 on average.
Within a source, examples are visited in a fresh seeded permutation per pass (no repeats inside
a pass).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["BatchSampler", "SourceDraw", "source_shares"]


@dataclass(frozen=True)
class SourceDraw:
    """One batch position: `index` into the source named `source`."""

    source: str
    index: int


def source_shares(
    new_weights: Mapping[str, float],
    replay_ratio: float,
    replay_weights: Mapping[str, float],
) -> dict[str, float]:
    """Share of each source in every batch.

    New sources get `(1 - replay_ratio) * weight`; replay pools split `replay_ratio` by their
    own weights. A name may not be both a new source and a replay pool.
    """
    if not 0.0 <= replay_ratio < 1.0:
        raise ValueError(f"`0 <= replay_ratio < 1` must hold, but got (replay_ratio={replay_ratio})")
    clash = set(new_weights) & set(replay_weights)
    if clash:
        raise ValueError(f"names used both as new source and replay pool: {sorted(clash)}")
    shares = {k: (1.0 - replay_ratio) * w for k, w in new_weights.items()}
    if replay_ratio > 0:
        if not replay_weights:
            raise ValueError(f"`replay_ratio={replay_ratio}` needs at least one replay pool")
        total = sum(replay_weights.values())
        shares.update({k: replay_ratio * w / total for k, w in replay_weights.items()})
    return {k: v for k, v in shares.items() if v > 0}


class BatchSampler:
    """Deterministic (seeded) stream of batches whose composition follows `shares`."""

    def __init__(
        self,
        shares: Mapping[str, float],
        sizes: Mapping[str, int],
        batch_size: int,
        seed: int,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size >= 1` must hold, but got (batch_size={batch_size})")
        missing = [k for k in shares if sizes.get(k, 0) < 1]
        if missing:
            raise ValueError(f"sources with a share but no examples: {missing}")
        total = sum(shares.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"`sum(shares) == 1` must hold, but got sum={total}")
        self.names: Sequence[str] = sorted(shares)
        self.shares = {k: shares[k] for k in self.names}
        self.sizes = dict(sizes)
        self.batch_size = batch_size
        self._rng = random.Random(seed)
        self._assigned = dict.fromkeys(self.names, 0)
        self._drawn = 0
        self._orders: dict[str, list[int]] = {}
        self._cursor: dict[str, int] = {}

    def _next_index(self, name: str) -> int:
        order = self._orders.get(name)
        pos = self._cursor.get(name, 0)
        if order is None or pos >= len(order):
            order = list(range(self.sizes[name]))
            self._rng.shuffle(order)
            self._orders[name] = order
            pos = 0
        self._cursor[name] = pos + 1
        return order[pos]

    def _next_source(self) -> str:
        # Largest deficit first: after n draws every source has floor/ceil of n * share.
        self._drawn += 1
        name = max(self.names, key=lambda k: (self.shares[k] * self._drawn - self._assigned[k], k))
        self._assigned[name] += 1
        return name

    def next_batch(self) -> list[SourceDraw]:
        batch = [SourceDraw(s, self._next_index(s)) for s in (self._next_source() for _ in range(self.batch_size))]
        self._rng.shuffle(batch)
        return batch

    def __iter__(self) -> Iterator[list[SourceDraw]]:
        while True:
            yield self.next_batch()
