from __future__ import annotations

import json
from pathlib import Path

import pytest

import recipe_opt
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule


def make(replay: float = 0.2, lr: float = 1e-3, **kw: object) -> Recipe:
    return Recipe(
        mixture=Mixture.from_mapping({"a": 0.25, "b": 0.75}),
        replay=Replay(replay),
        schedule=Schedule(peak_lr=lr, warmup_fraction=0.1, shape="cosine"),
        adapter=Adapter(rank=8, alpha_ratio=2.0, target_modules=("q_proj", "v_proj")),
        budget=Budget(steps=400, batch_size=32),
        **kw,  # type: ignore[arg-type]
    )


def test_round_trip_dict_json_yaml(tmp_path: Path) -> None:
    r = make().with_stamp()
    assert Recipe.from_dict(r.to_dict()) == r
    assert Recipe.load(r.save(tmp_path / "r.yaml")) == r
    assert Recipe.load(r.save(tmp_path / "r.json")) == r
    assert json.loads(r.to_json())["stamp"]["recipe-opt"] == recipe_opt.__version__  # install and code agree
    assert r.adapter.alpha == 16.0


def test_hash_ignores_stamp_and_float_noise() -> None:
    a = make()
    b = make().with_stamp()
    assert a.content_hash == b.content_hash
    c = Recipe(
        mixture=Mixture((("a", 0.1 + 0.15), ("b", 0.75))),
        replay=a.replay,
        schedule=a.schedule,
        adapter=a.adapter,
        budget=a.budget,
    )
    assert c.content_hash == a.content_hash
    assert make(replay=0.3).content_hash != a.content_hash
    assert make(seed=1).content_hash != a.content_hash


def test_edited_file_is_detected() -> None:
    d = make().to_dict()
    d["replay"]["ratio"] = 0.4
    with pytest.raises(ValueError, match="content_hash"):
        Recipe.from_dict(d)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Mixture.from_mapping({"a": 0.5, "b": 0.6}), r"sum\(weights\) == 1"),
        (lambda: Mixture.from_mapping({"a": -0.5, "b": 1.5}), "weight >= 0"),
        (lambda: Replay(1.0), r"0 <= ratio < 1.*ratio=1.0"),
        (lambda: Schedule(peak_lr=0, warmup_fraction=0, shape="cosine"), "peak_lr > 0"),
        (lambda: Schedule(peak_lr=1e-3, warmup_fraction=0, shape="triangle"), "'triangle'"),
        (lambda: Adapter(rank=0, alpha_ratio=2, target_modules=("q",)), r"rank >= 1.*rank=0"),
        (lambda: Budget(steps=0, batch_size=1), "steps >= 1"),
    ],
)
def test_invalid_fields_name_parameter_and_value(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_missing_field_is_named() -> None:
    d = make().to_dict()
    del d["budget"]
    with pytest.raises(ValueError, match="'budget'"):
        Recipe.from_dict(d)
