"""Benchmark: does the proxy rank recipes the way the full update would? (Spearman's rho)

    python bench/proxy_fidelity.py [--k 10] [--world demo_world] [--fraction 0.25]

K recipes drawn from the default search space (a seeded random sample, so they span it) are
each run twice on the demo world's v0 -> v1 update: as the study's proxy (`proxy.fraction` of the
steps at the proxy batch size, as `recipe-opt search` runs it) and at full fidelity (every step
at the recipe's batch size, as `recipe-opt apply` runs it). Both are scored on every suite by the
native scorer (the same metric as lm-eval). Reports Spearman's rho between proxy and full values
for each objective, and whether the proxy's best-gain recipe within the gates is the full run's.
Writes bench/results/proxy_fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from _cycles import REPO, full_runs, runner_for, study_yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.25, help="Proxy fraction (the demo study's is 0.25).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "proxy_fidelity.json")
    args = ap.parse_args()
    if args.k < 3:
        ap.error(f"`--k >= 3` must hold for a rank correlation, but got {args.k}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import optuna
    import torch

    from recipe_opt.demo import build_world
    from recipe_opt.evaluate import Evaluation
    from recipe_opt.study import spearman

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(os.cpu_count() or 1)
    if not (args.world / "world.json").is_file():
        build_world(args.world)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-fidelity-"))
    started = time.perf_counter()

    cfg_path = study_yaml(tmp, args.world, "fidelity", fraction=args.fraction)
    runner = runner_for(cfg_path)
    runner.build()
    sampler = optuna.samplers.RandomSampler(seed=args.seed)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    recipes = []
    for _ in range(args.k):
        trial = study.ask()
        recipes.append(runner.space.sample(trial, seed=0))
        study.tell(trial, [0.0, 0.0, 0.0])
    base: Evaluation = runner.evaluator.evaluate(runner.base.model)

    from recipe_opt.train import TrialInterrupted

    rows = []
    kept = []
    for i, recipe in enumerate(recipes):
        t0 = time.perf_counter()
        try:
            m = runner.measure(recipe, base)
        except TrialInterrupted as exc:  # a diverging proxy has no values to rank
            print(f"[{i + 1}/{args.k}] proxy {recipe.summary()}: {exc.reason}; left out", flush=True)
            continue
        kept.append(recipe)
        proxy = {**m.values, "seconds": round(time.perf_counter() - t0, 2)}
        print(
            f"[{i + 1}/{args.k}] proxy {recipe.summary()}: gain {proxy['gain']:+.3f} forgetting "
            f"{proxy['forgetting']:+.3f} cost {proxy['cost']:.3g}",
            flush=True,
        )
        rows.append({"recipe": recipe.to_dict(), "summary": recipe.summary(), "proxy": proxy})
    for row, full in zip(rows, full_runs(cfg_path, kept), strict=True):
        row["full"] = full

    rho = {
        key: spearman([r["proxy"][key] for r in rows], [r["full"][key] for r in rows])
        for key in ("gain", "forgetting", "cost")
    }
    gates = runner.cfg.gates

    def best(kind: str) -> int | None:
        ok = [
            i
            for i, r in enumerate(rows)
            if gates.max_forgetting is None or r[kind]["forgetting"] <= gates.max_forgetting
        ]
        return max(ok, key=lambda i: rows[i][kind]["gain"]) if ok else None

    out = {
        "command": f"python bench/proxy_fidelity.py --k {args.k} --fraction {args.fraction}",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "setup": {
            "world": "demo world (seed 0), cycle 1: v0 + mul, add_text",
            "recipes": f"{args.k} drawn at random from search_spaces/default.yaml (seed {args.seed})",
            "proxy": f"fraction {args.fraction} of the steps at batch {runner.cfg.proxy.batch_size}",
            "full": "every step at the recipe's batch size; every eval item",
            "scorer": "native",
        },
        "n_ranked": len(rows),
        "spearman_rho": {k: None if v is None else round(v, 3) for k, v in rho.items()},
        "best_gain_within_max_forgetting": {
            "proxy_pick": best("proxy"),
            "full_pick": best("full"),
            "max_forgetting": gates.max_forgetting,
        },
        "recipes": rows,
        "total_seconds": round(time.perf_counter() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "recipes"}, indent=2))


if __name__ == "__main__":
    main()
