"""The mixture-and-replay prescreen: probe weights, the adapter mixer, and a prescreened search."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from recipe_opt.exceptions import ConfigError
from recipe_opt.recipe import Mixture, Recipe, Replay
from recipe_opt.study._prescreen import (
    REPLAY_PROBE,
    AdapterMixer,
    Probe,
    affine_weights,
    probe_recipes,
    shares_of,
)
from tests.conftest import REPO, write_study


def _recipe() -> Recipe:
    from recipe_opt.space import load_search_space

    space = load_search_space(REPO / "search_spaces" / "default.yaml", ["mul", "add_text"])
    return space.sample(optuna.trial.FixedTrial({**space.informed_design()[0], "mix.mul": 0.5}))


def test_probe_recipes_are_the_anchor_with_one_source_each_and_one_on_replay() -> None:
    anchor = _recipe()
    probes = dict(probe_recipes(anchor))
    assert set(probes) == {"mul", "add_text", REPLAY_PROBE}
    assert probes["mul"].mixture.as_dict() == {"mul": 1.0, "add_text": 0.0} and probes["mul"].replay.ratio == 0
    assert probes[REPLAY_PROBE].replay.ratio == 0.9
    for r in probes.values():  # only the mixture and the replay share differ from the anchor
        assert replace(r, mixture=anchor.mixture, replay=anchor.replay) == anchor
    assert set(dict(probe_recipes(anchor, replay=False))) == {"mul", "add_text"}


def test_affine_weights_reproduce_the_target_shares() -> None:
    anchor = _recipe()
    probes = [Probe(n, r, shares_of(r), {}, 0.0) for n, r in probe_recipes(anchor)]
    target_recipe = replace(anchor, mixture=Mixture((("mul", 0.8), ("add_text", 0.2))), replay=Replay(0.3))
    target = shares_of(target_recipe)
    assert target == pytest.approx({"mul": 0.56, "add_text": 0.14, REPLAY_PROBE: 0.3})
    lam = affine_weights(probes, target)
    assert sum(lam) == pytest.approx(1.0)
    for key in target:
        assert sum(w * p.shares[key] for w, p in zip(lam, probes, strict=True)) == pytest.approx(target[key])
    # 0.3 replay needs a third of the 90%-replay probe; its 5% of each source is taken off the rest.
    assert lam == pytest.approx((0.56 - 0.05 / 3, 0.14 - 0.05 / 3, 1 / 3))
    with pytest.raises(ValueError, match="target shares name"):
        affine_weights(probes, {"mul": 1.0})


@pytest.mark.integration
def test_mixer_adds_the_probe_deltas_and_restores_the_base_bit_for_bit(tiny_world: Path, tmp_path: Path) -> None:
    import torch

    from recipe_opt.config import load_study_config
    from recipe_opt.space import load_search_space
    from recipe_opt.study import StudyRunner
    from recipe_opt.study._prescreen import _deltas

    cfg = load_study_config(write_study(tmp_path / "s", tiny_world))
    runner = StudyRunner(cfg, load_search_space(cfg.search_space_path, list(cfg.sources.new)))
    setup = runner.setup
    anchor = runner.space.sample(optuna.trial.FixedTrial(runner.space.informed_design()[0] | {"mix.mul": 0.5}))
    anchor = replace(anchor, budget=replace(anchor.budget, steps=200))
    model = setup.base.model
    batch = torch.tensor([[5, 9, 11, 3, 7, 2, 8, 4]])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        base_logits = model(batch).logits
    probes = []
    for name, recipe in probe_recipes(anchor):
        with setup.trainer.train(recipe) as (adapted, _):
            with torch.no_grad():
                adapted_logits = adapted(batch).logits
            probes.append((Probe(name, recipe, shares_of(recipe), _deltas(adapted), 0.0), adapted_logits))
    assert all(len(p.delta) > 0 for p, _ in probes)
    mixer = AdapterMixer(model, [p for p, _ in probes])
    for j, (_, adapted_logits) in enumerate(probes):
        weights = [1.0 if i == j else 0.0 for i in range(len(probes))]
        with mixer.mixed(weights) as mixed, torch.no_grad():
            # One probe's delta added to the base is that probe's adapted model (LoRA, merged).
            assert torch.allclose(mixed(batch).logits, adapted_logits, atol=1e-4)
            assert not torch.allclose(mixed(batch).logits, base_logits, atol=1e-4)
    with mixer.mixed([0.5, 0.3, 0.2]):
        pass
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)  # the base, bit for bit
    with pytest.raises(ValueError, match="one weight per probe"), mixer.mixed([1.0]):
        pass


def test_prescreen_with_a_budget_is_refused(tmp_path: Path) -> None:
    from recipe_opt.config import load_study_config

    cfg = write_study(
        tmp_path / "s", tmp_path / "w", extra="trials: {n_trials: 4, budget: 0.5x}\nprescreen: {enabled: true}"
    )
    with pytest.raises(ConfigError, match=r"prescreen.enabled: cannot be combined with trials.budget"):
        load_study_config(cfg)


@pytest.mark.integration
def test_a_prescreened_search_queues_the_best_simulated_mixtures_and_counts_the_probes(
    tiny_world: Path, tmp_path: Path
) -> None:
    space = (REPO / "search_spaces" / "default.yaml").read_text()
    space = space.replace(
        "steps: {type: int, low: 200, high: 1000, step: 50}", "steps: {type: int, low: 120, high: 200, step: 40}"
    )
    cfg = write_study(
        tmp_path / "s",
        tiny_world,
        name="prescreened",
        space=space,
        n_trials=3,
        gates="{max_forgetting: 1.0, max_new_task_drop: null, min_gain: -1.0}",
        extra="prescreen: {enabled: true, probe_fraction: 0.2, candidates: 6, top_k: 2}",
    )
    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg)], capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "prescreen: 3 probes" in r.stdout and "queued the best 2 of 6" in r.stdout
    study = optuna.load_study(study_name="prescreened", storage=f"sqlite:///{tmp_path / 's' / 'demo.db'}")
    record = study.user_attrs["prescreen"]
    assert [p["name"] for p in record["probes"]] == ["mul", "add_text", REPLAY_PROBE]
    assert record["tflop"] == pytest.approx(sum(p["tflop"] for p in record["probes"])) and record["tflop"] > 0
    # The first two trials (no informed design here) are the prescreen's two best, in its order.
    trials = sorted(study.trials, key=lambda t: t.number)
    queued = [t for t in trials if str(t.user_attrs.get("origin", "")).startswith("prescreen")]
    assert [t.number for t in queued] == [0, 1]
    assert [Recipe.from_dict(t.user_attrs["recipe"]).summary() for t in queued] == [c["recipe"] for c in record["top"]]
    first, second = (Recipe.from_dict(t.user_attrs["recipe"]) for t in queued)
    assert replace(first, mixture=second.mixture, replay=second.replay) == second  # the anchor's other params
    # The probes are part of the search's price.
    from recipe_opt.study import StudyRecord, search_price

    price = search_price(StudyRecord.read(study))
    assert price.search_tflop == pytest.approx(
        sum(t.user_attrs["proxy_tflops"] for t in trials if t.state.is_finished()) + record["tflop"]
    )
