"""Batches follow the recipe's mixture and replay ratio."""

from __future__ import annotations

from collections import Counter

import pytest

from recipe_opt.data import BatchSampler, source_shares


def test_shares_split_new_and_replay() -> None:
    shares = source_shares({"mul": 0.25, "txt": 0.75}, 0.2, {"old_a": 1.0, "old_b": 3.0})
    assert shares == pytest.approx({"mul": 0.2, "txt": 0.6, "old_a": 0.05, "old_b": 0.15})
    assert source_shares({"mul": 1.0}, 0.0, {"old": 1.0}) == {"mul": 1.0}
    with pytest.raises(ValueError, match="replay pool"):
        source_shares({"mul": 1.0}, 0.3, {})


@pytest.mark.parametrize("replay", [0.0, 0.07, 0.3, 0.5])
def test_counts_track_target_at_every_step(replay: float) -> None:
    shares = source_shares({"mul": 0.3, "txt": 0.7}, replay, {"old": 1.0})
    sampler = BatchSampler(shares, {"mul": 100, "txt": 50, "old": 1000}, batch_size=32, seed=0)
    seen: Counter[str] = Counter()
    for step in range(1, 101):
        batch = sampler.next_batch()
        assert len(batch) == 32
        seen.update(d.source for d in batch)
        drawn = 32 * step
        for name, share in shares.items():
            # Apportionment keeps every running count within one example of its target.
            assert abs(seen[name] - share * drawn) <= 1.0, (name, step, seen[name], share * drawn)
    if replay == 0.0:
        assert "old" not in seen


def test_every_batch_holds_its_replay_share() -> None:
    shares = source_shares({"mul": 1.0}, 0.07, {"old": 1.0})
    sampler = BatchSampler(shares, {"mul": 100, "old": 100}, batch_size=32, seed=3)
    per_batch = [sum(d.source == "old" for d in sampler.next_batch()) for _ in range(200)]
    assert set(per_batch) <= {2, 3}  # 32 * 0.07 = 2.24
    assert sum(per_batch) / len(per_batch) == pytest.approx(2.24, abs=0.01)


def test_examples_visited_without_repeats_within_a_pass() -> None:
    sampler = BatchSampler({"a": 1.0}, {"a": 64}, batch_size=16, seed=1)
    first_pass = [d.index for _ in range(4) for d in sampler.next_batch()]
    assert sorted(first_pass) == list(range(64))


def test_same_seed_same_batches_other_seed_differs() -> None:
    def run(seed: int) -> list[tuple[str, int]]:
        s = BatchSampler({"a": 0.5, "b": 0.5}, {"a": 50, "b": 50}, batch_size=8, seed=seed)
        return [(d.source, d.index) for _ in range(10) for d in s.next_batch()]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no examples"):
        BatchSampler({"a": 1.0}, {"a": 0}, batch_size=4, seed=0)
    with pytest.raises(ValueError, match=r"sum\(shares\) == 1"):
        BatchSampler({"a": 0.5}, {"a": 3}, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="batch_size=0"):
        BatchSampler({"a": 1.0}, {"a": 3}, batch_size=0, seed=0)
