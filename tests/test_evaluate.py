"""The two scorers agree, on the base and on an adapted model; task lookup errors help."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from recipe_opt.evaluate import LmEvalScorer, NativeScorer, find_tasks
from recipe_opt.exceptions import EvaluationError
from tests.conftest import REPO

pytestmark = pytest.mark.integration

TASKS = ["demo_add", "demo_rev", "demo_copy", "demo_lookup", "demo_mul", "demo_add_text"]


def test_native_scorer_matches_lm_eval(tiny_world: Path) -> None:
    from recipe_opt.data import encode_examples, read_jsonl
    from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
    from recipe_opt.train import ProxySettings, ProxyTrainer, TrainingData, load_base_model

    base = load_base_model(tiny_world / "models" / "v0")
    tasks = find_tasks(REPO / "evaluators" / "demo", TASKS, tiny_world / "data")
    native = NativeScorer(tasks, base.tokenizer, pad_id=base.pad_id, max_seq_len=32)
    harness = LmEvalScorer(tasks, base.tokenizer, batch_size=64)

    def compare(model: object) -> dict[str, float]:
        a, b = native.score(model), harness.score(model)
        for name in TASKS:
            assert a[name]["acc"] == pytest.approx(b[name]["acc"], abs=1e-12), name
            assert a[name]["n"] == b[name]["n"]
            # lm-eval's perplexity aggregation is exp(-mean loglikelihood) over items.
            assert math.exp(-a[name]["loglikelihood"]) == pytest.approx(b[name]["perplexity"], rel=1e-3)
        return {n: a[n]["acc"] for n in TASKS}

    base_acc = compare(base.model)
    assert min(base_acc[t] for t in ("demo_add", "demo_rev", "demo_copy", "demo_lookup")) >= 0.9

    enc = lambda p: encode_examples(base.tokenizer, read_jsonl(tiny_world / "data" / p), max_seq_len=32, source=p)  # noqa: E731
    trainer = ProxyTrainer(
        base,
        TrainingData(new={"mul": enc("cycle1/mul.jsonl")}, replay={}, replay_weights={}),
        ProxySettings(fraction=1.0, batch_size=16, max_seq_len=32),
    )
    recipe = Recipe(
        Mixture.from_mapping({"mul": 1.0}),
        Replay(0.0),
        Schedule(1e-2, 0.1, "cosine"),
        Adapter(8, 2.0, ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj")),
        Budget(60, 16),
    )
    with trainer.train(recipe) as (model, _):
        adapted = compare(model)  # scores of a peft-wrapped model in memory, not a reloaded one
    assert adapted["demo_mul"] > base_acc["demo_mul"]
    assert adapted["demo_add"] < base_acc["demo_add"]  # no replay: the update forgets


def test_unknown_task_suggests_the_closest(tiny_world: Path) -> None:
    with pytest.raises(EvaluationError, match="Did you mean 'demo_copy'"):
        find_tasks(REPO / "evaluators" / "demo", ["demo_cpy"], tiny_world / "data")


def test_task_files_are_data_not_code(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("task: t\nprocess_docs: !function utils.process\n")
    with pytest.raises(EvaluationError, match="never runs code"):
        find_tasks(tmp_path, ["t"], tmp_path)
