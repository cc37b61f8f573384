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


def test_lm_evals_own_tasks_by_name(tiny_world: Path) -> None:
    tasks = find_tasks(REPO / "evaluators" / "demo", ["demo_add", "hellaswag", "arc_easy"], tiny_world / "data")
    assert tasks["hellaswag"].builtin and tasks["arc_easy"].builtin and not tasks["demo_add"].builtin
    with pytest.raises(EvaluationError, match=r"nor one of lm-eval's own tasks\. Did you mean 'hellaswag'\?"):
        find_tasks(REPO / "evaluators" / "demo", ["hellaswg"], tiny_world / "data")
    from recipe_opt.train import load_base_model

    base = load_base_model(tiny_world / "models" / "v0")
    # The native scorer renders local prompt/completion tasks only.
    with pytest.raises(EvaluationError, match="one of lm-eval's own tasks; the native scorer"):
        NativeScorer({"hellaswag": tasks["hellaswag"]}, base.tokenizer, pad_id=base.pad_id, max_seq_len=32)
    # Offline (the tests set HF_DATASETS_OFFLINE=1) its dataset cannot be fetched: one line, not a traceback.
    with pytest.raises(EvaluationError, match="lm-eval could not build the eval tasks: ") as info:
        LmEvalScorer({"hellaswag": tasks["hellaswag"]}, base.tokenizer)
    assert "\n" not in str(info.value)


def test_lm_eval_options_pass_through_and_are_checked(tiny_world: Path) -> None:
    from recipe_opt.train import load_base_model

    base = load_base_model(tiny_world / "models" / "v0")
    tasks = find_tasks(REPO / "evaluators" / "demo", ["demo_add"], tiny_world / "data")
    with pytest.raises(EvaluationError, match=r"evaluation.lm_eval: \['num_shots'\] not options .* num_fewshot"):
        LmEvalScorer(tasks, base.tokenizer, options={"num_shots": 2})
    zero = LmEvalScorer(tasks, base.tokenizer, limit=8).score(base.model)["demo_add"]
    two = LmEvalScorer(tasks, base.tokenizer, limit=8, options={"num_fewshot": 2}).score(base.model)["demo_add"]
    assert (zero["n_shot"], two["n_shot"]) == (0.0, 2.0) and two["n"] == 8


def test_lm_eval_environment_metadata_is_collected_once(tiny_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`simple_evaluate` probes the environment (torch's collect_env) on every call; recipe-opt
    keeps the first answer for the process, so later evaluations skip the probe."""
    import lm_eval.evaluator
    import torch.utils.collect_env

    from recipe_opt.train import load_base_model

    probes: list[int] = []
    original = torch.utils.collect_env.get_pretty_env_info
    monkeypatch.setattr(torch.utils.collect_env, "get_pretty_env_info", lambda: probes.append(1) or original())
    base = load_base_model(tiny_world / "models" / "v0")
    tasks = find_tasks(REPO / "evaluators" / "demo", ["demo_add"], tiny_world / "data")
    for _ in range(2):
        LmEvalScorer(tasks, base.tokenizer, limit=4).score(base.model)
    # At most the first evaluation of the session probes (an earlier test may have done it).
    assert len(probes) <= 1
    results: dict[str, object] = {}
    lm_eval.evaluator.add_env_info(results)
    assert isinstance(results.get("pretty_env_info"), str) and results["pretty_env_info"]
