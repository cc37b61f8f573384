"""Benchmark: where a demo trial's time goes, and lm-eval vs the native scorer.

    python bench/eval_backends.py [--world demo_world] [--repeats 5]

Uses the demo world (built with `recipe-opt demo init demo_world` if absent). Measures, on this
machine: base-model load, each scorer's one-time set-up, one evaluation of all six demo tasks per
backend (median of --repeats), and proxy training of three recipes of different lengths. Writes
bench/results/eval_backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ["demo_add", "demo_rev", "demo_copy", "demo_lookup", "demo_mul", "demo_add_text"]
ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval_backends.json")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from recipe_opt.data import encode_examples, read_jsonl
    from recipe_opt.demo import build_world
    from recipe_opt.evaluate import LmEvalScorer, NativeScorer, find_tasks
    from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
    from recipe_opt.train import ProxySettings, ProxyTrainer, TrainingData, load_base_model

    torch.set_num_threads(os.cpu_count() or 1)
    if not (args.world / "world.json").is_file():
        build_world(args.world)

    t = time.perf_counter()
    base = load_base_model(args.world / "models" / "v0")
    load_s = time.perf_counter() - t
    tasks = find_tasks(REPO / "evaluators" / "demo", TASKS, args.world / "data")
    n_items = 0

    results: dict[str, dict[str, float]] = {}
    for name, make in (
        ("native", lambda: NativeScorer(tasks, base.tokenizer, pad_id=base.pad_id, max_seq_len=32)),
        ("lm-eval", lambda: LmEvalScorer(tasks, base.tokenizer, batch_size=64)),
    ):
        t = time.perf_counter()
        scorer = make()
        setup = time.perf_counter() - t
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            scores = scorer.score(base.model)
            times.append(time.perf_counter() - t)
        n_items = int(sum(v["n"] for v in scores.values()))
        results[name] = {"setup_s": round(setup, 3), "evaluate_median_s": round(statistics.median(times), 3)}

    enc = lambda p: encode_examples(base.tokenizer, read_jsonl(args.world / "data" / p), max_seq_len=32, source=p)  # noqa: E731
    trainer = ProxyTrainer(
        base,
        TrainingData(
            new={"mul": enc("cycle1/mul.jsonl"), "add_text": enc("cycle1/add_text.jsonl")},
            replay={"old": enc("replay/old.jsonl")},
            replay_weights={"old": 1.0},
        ),
        ProxySettings(fraction=0.25, batch_size=32, max_seq_len=32),
    )
    training = []
    for steps in (200, 600, 1000):
        recipe = Recipe(
            Mixture.from_mapping({"mul": 0.5, "add_text": 0.5}),
            Replay(0.3),
            Schedule(3e-3, 0.1, "cosine"),
            Adapter(16, 2.0, ALL),
            Budget(steps, 32),
        )
        with trainer.train(recipe) as (_, r):
            training.append(
                {
                    "full_update_steps": steps,
                    "proxy_steps": r.proxy_steps,
                    "train_s": round(r.train_seconds, 3),
                    "tokens_per_s": round(r.tokens_per_second),
                }
            )

    out = {
        "command": "python bench/eval_backends.py",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "eval_items": n_items,
        "base_model_load_s": round(load_s, 3),
        "evaluation": results,
        "proxy_training": training,
        "speedup_native_vs_lm_eval": round(
            results["lm-eval"]["evaluate_median_s"] / results["native"]["evaluate_median_s"], 1
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
