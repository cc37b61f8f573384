"""The proxy trainer on a real (tiny) base model: integrity of the base, budgets, measured cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_opt.data import encode_examples, read_jsonl
from recipe_opt.exceptions import TrainingError
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.train import (
    Fidelity,
    ProxySettings,
    ProxyTrainer,
    TrainingData,
    TrainState,
    load_base_model,
    state_checksum,
)

pytestmark = pytest.mark.integration

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def recipe(
    steps: int = 200, replay: float = 0.3, rank: int = 8, lr: float = 1e-2, targets: tuple[str, ...] = ALL
) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
        Replay(replay),
        Schedule(lr, 0.1, "cosine"),
        Adapter(rank, 2.0, targets),
        Budget(steps, 16),
    )


@pytest.fixture(scope="module")
def trainer(tiny_world: Path) -> ProxyTrainer:
    base = load_base_model(tiny_world / "models" / "v0")
    enc = lambda p: encode_examples(base.tokenizer, read_jsonl(tiny_world / "data" / p), max_seq_len=32, source=p)  # noqa: E731
    data = TrainingData(
        new={"mul": enc("cycle1/mul.jsonl"), "add_text": enc("cycle1/add_text.jsonl")},
        replay={"old": enc("replay/old.jsonl")},
        replay_weights={"old": 1.0},
    )
    return ProxyTrainer(base, data, ProxySettings(fraction=0.1, batch_size=16, max_seq_len=32))


def test_base_weights_untouched_and_adapter_really_trained(trainer: ProxyTrainer) -> None:
    before = state_checksum(trainer.base.model)
    with trainer.train(recipe()) as (model, result):
        adapted = state_checksum(model)
        assert any("lora_A" in n for n, _ in model.named_parameters())
        assert result.final_loss < result.first_loss
    assert adapted != before
    assert state_checksum(trainer.base.model) == before
    assert not any("lora" in n for n, _ in trainer.base.model.named_parameters())
    assert not any(p.requires_grad for p in trainer.base.model.parameters())


def test_a_run_times_its_phases(trainer: ProxyTrainer) -> None:
    """Setup, data, rungs and unload are timed apart from the steps (bench/trial_profile.py reads them)."""
    seen: list[float] = []

    def rung(step: int, model: object, partial: object) -> None:
        seen.append(step)

    with trainer.train(recipe(steps=200), rungs={10: rung}) as (_, result):
        assert result.unload_seconds == 0.0  # not unloaded yet
    assert seen == [10]
    assert result.setup_seconds > 0 and result.data_seconds > 0 and result.rung_seconds > 0
    assert result.unload_seconds > 0  # set when the block exits
    assert 0 < result.step_seconds < result.train_seconds
    assert result.data_seconds + result.rung_seconds < result.train_seconds
    m = result.as_metrics()
    assert m["unload_seconds"] == round(result.unload_seconds, 4) and m["setup_seconds"] > 0


def test_a_stopped_run_is_timed_up_to_its_stop(trainer: ProxyTrainer) -> None:
    """A rung that stops the run: its own time and the unload are in the stopped run's result."""
    import time

    from recipe_opt.train import EarlyStop, TrialStopped

    def rung(step: int, model: object, partial: object) -> None:
        time.sleep(0.05)
        raise EarlyStop("dominated")

    with pytest.raises(TrialStopped) as info, trainer.train(recipe(steps=200), rungs={10: rung}):
        pass
    result = info.value.result
    assert info.value.step == 10 and len(result.losses) == 10
    assert result.rung_seconds >= 0.05 and result.unload_seconds > 0


def test_base_restored_after_a_failing_trial(trainer: ProxyTrainer) -> None:
    before = state_checksum(trainer.base.model)
    with pytest.raises(RuntimeError, match="boom"), trainer.train(recipe(steps=100)):
        raise RuntimeError("boom")
    assert state_checksum(trainer.base.model) == before


def test_proxy_runs_fraction_of_full_budget_and_cost_scales(trainer: ProxyTrainer) -> None:
    with trainer.train(recipe(steps=200)) as (_, short):
        pass
    with trainer.train(recipe(steps=400)) as (_, long):
        pass
    assert (short.proxy_steps, long.proxy_steps) == (20, 40)
    assert len(short.losses) == 20
    # Same mixture, same batches per step: twice the steps is twice the projected FLOPs.
    assert long.full_update_flops == pytest.approx(2 * short.full_update_flops, rel=0.02)
    # 4N + 6n per token, over exactly the tokens the proxy saw.
    n, n_lora = trainer.base.non_embedding_params, short.trainable_params
    assert short.proxy_flops == pytest.approx((4 * n + 6 * n_lora) * short.tokens_seen)
    assert short.peak_memory_bytes > 0 and short.train_seconds > 0


def test_cost_is_stable_run_to_run(trainer: ProxyTrainer) -> None:
    r = recipe(steps=150, rank=4)
    with trainer.train(r) as (_, a):
        pass
    with trainer.train(r) as (_, b):
        pass
    assert a.full_update_flops == b.full_update_flops
    assert a.losses == pytest.approx(b.losses, rel=1e-4)


def test_higher_rank_costs_more(trainer: ProxyTrainer) -> None:
    with trainer.train(recipe(steps=100, rank=2)) as (_, small):
        pass
    with trainer.train(recipe(steps=100, rank=32)) as (_, big):
        pass
    assert big.trainable_params == 16 * small.trainable_params
    assert big.full_update_flops > small.full_update_flops


def test_unknown_target_module_is_a_clear_error(trainer: ProxyTrainer) -> None:
    before = state_checksum(trainer.base.model)
    with pytest.raises(TrainingError, match="c_attn"), trainer.train(recipe(targets=("c_attn",))):
        pass
    assert state_checksum(trainer.base.model) == before


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"no config\.json"):
        load_base_model(tmp_path)


def test_systems_options_change_memory_not_the_recipe(trainer: ProxyTrainer) -> None:
    """Gradient accumulation and checkpointing give the same losses; bf16 autocast trains too."""
    from dataclasses import replace

    checksum = state_checksum(trainer.base.model)
    r = recipe(steps=80)  # 8 proxy steps

    def losses(**options: object) -> list[float]:
        t = ProxyTrainer(trainer.base, trainer.data, replace(trainer.settings, **options))  # type: ignore[arg-type]
        with t.train(r) as (_, result):
            out = result.losses
        assert state_checksum(trainer.base.model) == checksum  # the base is restored each time
        return out

    plain = losses()
    assert losses(grad_accumulation=4) == pytest.approx(plain, rel=1e-4)
    assert losses(gradient_checkpointing=True) == pytest.approx(plain, rel=1e-5)
    assert not any(m.__class__.__name__ == "CheckpointFunction" for m in trainer.base.model.modules())
    assert not trainer.base.model.is_gradient_checkpointing
    half = losses(mixed_precision="bf16")
    assert half[0] == pytest.approx(plain[0], rel=0.05) and half[-1] < half[0]
    with pytest.raises(TrainingError, match=r"must divide the batch size, but got \(batch_size=16, gradient_acc"):
        ProxyTrainer(trainer.base, trainer.data, replace(trainer.settings, grad_accumulation=3))


def _adapter(model: object) -> dict[str, object]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora" in n}  # type: ignore[attr-defined]


def test_a_prefix_continued_from_its_state_is_the_uninterrupted_run(trainer: ProxyTrainer, tmp_path: Path) -> None:
    """Continuation: a run stopped at step 12 of a 40-step schedule, saved to disk, loaded and
    continued to step 40 trains exactly what one 40-step run trains, and each run counts only the
    steps (and FLOPs) it ran itself, so the two together cost what the one run costs."""
    import torch

    r = recipe(steps=40, lr=5e-3)
    with trainer.train(r, fidelity=Fidelity(stop=40, horizon=40)) as (model, whole):
        straight = _adapter(model)
    with trainer.train(r, fidelity=Fidelity(stop=12, horizon=40)) as (_, first):
        pass
    assert first.state is not None and first.state.step == 12 and first.proxy_steps == 12
    first.state.save(tmp_path / "trial.pt")
    state = TrainState.load(tmp_path / "trial.pt")
    with trainer.train(r, fidelity=Fidelity(stop=40, horizon=40), resume=state) as (model, rest):
        continued = _adapter(model)
    assert (rest.start_step, rest.proxy_steps) == (12, 28)
    assert first.losses + rest.losses == whole.losses  # bit for bit: same batches, LR, moments, RNG
    assert all(torch.equal(straight[n], continued[n]) for n in straight)
    assert first.proxy_flops + rest.proxy_flops == pytest.approx(whole.proxy_flops)
    assert rest.full_update_flops == pytest.approx(whole.full_update_flops, rel=0.02)


def test_an_annealing_branch_is_scored_but_not_continued(trainer: ProxyTrainer) -> None:
    """The branch decays the LR to 0 over its extra steps and changes the scored model; the state
    is the prefix's, so a continuation from it is still the uninterrupted run."""
    r = recipe(steps=40, lr=5e-3)
    with trainer.train(r, fidelity=Fidelity(stop=12, horizon=40)) as (model, plain):
        prefix = _adapter(model)
    with trainer.train(r, fidelity=Fidelity(stop=12, horizon=40, anneal=6)) as (model, annealed):
        branched = _adapter(model)
    assert annealed.proxy_steps == 18 and annealed.losses[:12] == plain.losses
    assert any(not (prefix[n] == branched[n]).all() for n in prefix)
    assert annealed.state is not None
    with trainer.train(r, fidelity=Fidelity(stop=40, horizon=40), resume=annealed.state) as (_, rest):
        pass
    with trainer.train(r, fidelity=Fidelity(stop=40, horizon=40)) as (_, whole):
        pass
    assert plain.losses + rest.losses == whole.losses
    # At the schedule's end there is nothing to anneal: no branch is run.
    assert Fidelity(stop=40, horizon=40, anneal=6).branch == 0


def test_a_state_resumes_only_its_own_recipe_and_schedule(trainer: ProxyTrainer) -> None:
    r = recipe(steps=40)
    with trainer.train(r, fidelity=Fidelity(stop=10, horizon=40)) as (_, first):
        pass
    assert first.state is not None
    other = recipe(steps=40, rank=4)
    for what, fid in ((other, Fidelity(stop=40, horizon=40)), (r, Fidelity(stop=50, horizon=50))):
        with pytest.raises(TrainingError, match="cannot resume"), trainer.train(what, fidelity=fid, resume=first.state):
            pass
    with pytest.raises(TrainingError, match="compressed proxy"), trainer.train(r, resume=first.state):
        pass
    with pytest.raises(ValueError, match="stop <= horizon"):
        Fidelity(stop=41, horizon=40)
