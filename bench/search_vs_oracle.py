"""Benchmark: the search against the full-fidelity oracle (bench/oracle.py): the pick's regret,
the front's quality, and the search's price in full updates.

    python bench/search_vs_oracle.py [--seeds 5] [--arms default,random,tpe] [--trials 40]

Each arm runs the search as a user would, on the demo world's cycle-1 update (the shipped
studies/demo.yaml with the native scorer, lm-eval's metric at a seventh of the cost):

* `default`: the shipped config as it is (GP after the informed design, 24 trials, proxies of a
  quarter of the steps, its gates and `gain-within-gates`);
* `random`, `tpe`: the same with random search / multivariate TPE and no informed design.

Each search runs `--trials` trials (40, for the front after 40); the pick is what the shipped
budget (its `n_trials`, 24) would select from the first 24. Every recipe the figures need at
full fidelity (the picks, the front members after 5, 10, 20 and 40 trials) is looked up in the
oracle when the same recipe and seed is there, else trained exactly as `apply` trains it and
cached (resumable) in bench/results/search_vs_oracle_runs.json. Per arm and seed:

* pick_relative: the pick's full-fidelity gain / the best full-fidelity gain among the oracle's
  recipes that pass the gates at full fidelity; pick_passes_gates_full: whether the pick does;
* full_hv_relative_by_trials: the hypervolume (gain up, forgetting and cost down; reference at
  gain 0, the forgetting bound, 1.1 x the oracle's largest cost) of the full-fidelity values of the
  feasible front after k trials, over the oracle's; only members that pass at full fidelity count;
* search_over_update: the search's proxy compute over its first 24 trials (pruned and failed
  included, plus re-runs) / the measured full-update compute of its pick.

Writes bench/results/search_vs_oracle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _cycles import REPO, run_study, runner_for, study_yaml

ARMS: dict[str, dict[str, Any] | None] = {
    "default": None,  # the shipped config's sampler
    "random": {"name": "random", "initial_design": "none"},
    "tpe": {"name": "tpe", "n_startup_trials": 8, "initial_design": "none"},
}
CHECKPOINTS = (5, 10, 20, 40)


def hypervolume(points: list[dict[str, float]], ref: tuple[float, float, float]) -> float:
    """Hypervolume of (gain up, forgetting down, cost down) points against `ref` (gain, forgetting, cost)."""
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG implementation

    loss = [
        [-p["gain"], p["forgetting"], p["cost"]]
        for p in points
        if -p["gain"] < -ref[0] and p["forgetting"] < ref[1] and p["cost"] < ref[2]
    ]
    if not loss:
        return 0.0
    return float(compute_hypervolume(np.array(loss), np.array([-ref[0], ref[1], ref[2]])))


def prefix_study(study: Any, k: int) -> Any:
    """An in-memory copy of `study` holding its first `k` trials of this cycle (and its attributes)."""
    import optuna

    copy = optuna.create_study(directions=study.directions)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    copy.set_user_attr("selection", None)
    finished = [t for t in study.trials if t.state.is_finished()]
    for t in finished[:k]:
        copy.add_trial(t)
    return copy


class FullRuns:
    """Full-fidelity results by recipe hash and seed: the oracle's, then this benchmark's own."""

    def __init__(self, oracle: dict[str, Any], cache_path: Path, runner: Any) -> None:
        self.oracle = oracle.get("runs", {})
        self.cache_path = cache_path
        self.cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        self.runner = runner
        self._fidelity: Any = None
        self.looked_up = self.trained = 0

    def get(self, recipe: Any) -> dict[str, Any]:
        from recipe_opt._files import write_atomic

        key = f"{recipe.content_hash}:{recipe.seed}"
        if key in self.oracle:
            self.looked_up += 1
            return dict(self.oracle[key])
        if key not in self.cache:
            if self._fidelity is None:
                from recipe_opt.study import FullFidelity

                self._fidelity = FullFidelity(self.runner)
            done = self._fidelity.train(recipe)
            record = done.to_dict()
            record.pop("tasks_after", None)
            self.cache[key] = record
            self.trained += 1
            write_atomic(self.cache_path, json.dumps(self.cache, indent=1) + "\n")
            v = done.full.values
            print(f"    full {recipe.short_hash}: gain {v['gain']:+.3f} forgetting {v['forgetting']:+.3f}", flush=True)
        return dict(self.cache[key])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--oracle", type=Path, default=REPO / "bench" / "results" / "oracle_cycle1.json")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--trials", type=int, default=max(CHECKPOINTS))
    ap.add_argument("--space", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search_vs_oracle.json")
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "results" / "search_vs_oracle_runs.json")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from recipe_opt.study import StudyRecord, search_price, select_recipe

    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    oracle = json.loads(args.oracle.read_text())
    if not oracle.get("complete"):
        print(f"note: {args.oracle} is not complete; figures are against what it holds", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-vs-oracle-"))
    base_cfg = study_yaml(tmp, args.world, "lookup", cycle=1, space=args.space)
    runner = runner_for(base_cfg)
    cfg = runner.cfg
    budget = int(cfg.trials.n_trials or 24)  # the shipped budget: what the pick is chosen from
    full = FullRuns(oracle, args.cache, runner)

    # The oracle's truth: which recipes pass at full fidelity, the best in-gate gain, its hypervolume.
    first_seed = [r for r in oracle["runs"].values() if r["seed"] == 0]
    passing = [r for r in first_seed if r["passes_gates"]]
    best = max((r["gain"] for r in passing), default=float("nan"))
    ref = (0.0, float(cfg.gates.max_forgetting or 1.0), 1.1 * max(r["cost"] for r in first_seed))
    oracle_hv = hypervolume(passing, ref)
    noise = oracle.get("noise", {})

    # Resumable: each (arm, seed) is written as it finishes and skipped when run again.
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    done_runs: dict[str, Any] = previous.get("by_run", {})
    arms_out: dict[str, Any] = {}
    started = time.perf_counter()

    def write(out: dict[str, Any]) -> None:
        from recipe_opt._files import write_atomic

        write_atomic(args.out, json.dumps(out, indent=2) + "\n")

    for arm in args.arms.split(","):
        sampler = ARMS[arm]
        for seed in range(args.seeds):
            name = f"{arm}-s{seed}"
            if name in done_runs:
                continue
            path = study_yaml(
                tmp, args.world, name, cycle=1, seed=seed, trials=args.trials, sampler=sampler, space=args.space
            )
            print(f"{name}: searching ({args.trials} trials)", flush=True)
            study, seconds = run_study(path)
            pick_study = prefix_study(study, budget)
            selected = select_recipe(pick_study, cfg)
            pick = full.get(selected.recipe)
            price = search_price(StudyRecord.read(pick_study), measured_update_tflop=pick["cost"])
            hv: dict[str, float | None] = {}
            for k in CHECKPOINTS:
                front = StudyRecord.read(prefix_study(study, k), gates=cfg.gates).front
                members = [full.get(t.recipe) for t in front if t.recipe is not None]
                value = hypervolume([m for m in members if m["passes_gates"]], ref)
                hv[str(k)] = value / oracle_hv if oracle_hv and len(study.trials) >= k else None
            done_runs[name] = {
                "arm": arm,
                "seed": seed,
                "pick_relative": pick["gain"] / best,
                "pick_passes_gates_full": bool(pick["passes_gates"]),
                "search_over_update": price.ratio,
                "full_hv_relative": hv,
                "trial": selected.trial_number,
                "recipe": selected.recipe.summary(),
                "proxy": selected.values,
                "full": {k: pick[k] for k in ("gain", "forgetting", "cost")},
                "search_tflop": price.search_tflop,
                "search_seconds": round(seconds),
            }
            write({**previous, "by_run": done_runs})
            print(
                f"{name}: pick trial {selected.trial_number} full gain {pick['gain']:+.3f} "
                f"({pick['gain'] / best:.2f} of the best in-gate), gates {'pass' if pick['passes_gates'] else 'FAIL'}, "
                f"price {price.ratio:.1f} updates",
                flush=True,
            )
    for arm in args.arms.split(","):
        runs = sorted((r for r in done_runs.values() if r["arm"] == arm), key=lambda r: r["seed"])
        rows: dict[str, Any] = {
            "pick_relative": [r["pick_relative"] for r in runs],
            "pick_passes_gates_full": [r["pick_passes_gates_full"] for r in runs],
            "search_over_update": [r["search_over_update"] for r in runs],
            "full_hv_relative_by_trials": {str(k): [r["full_hv_relative"][str(k)] for r in runs] for k in CHECKPOINTS},
        }
        rows["mean"] = {
            "pick_relative": statistics.fmean(rows["pick_relative"]),
            "pick_passes_gates_full": statistics.fmean(rows["pick_passes_gates_full"]),
            "search_over_update": statistics.fmean(rows["search_over_update"]),
            "full_hv_relative_by_trials": {
                k: statistics.fmean(v) for k, v in rows["full_hv_relative_by_trials"].items() if v and None not in v
            },
        }
        arms_out[arm] = rows
    out = {
        "command": " ".join(["python", "bench/search_vs_oracle.py", *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform()},
        "oracle": {
            "file": str(args.oracle.relative_to(REPO)) if args.oracle.is_relative_to(REPO) else str(args.oracle),
            "n_recipes": len(first_seed),
            "n_passing_gates": len(passing),
            "best_in_gate_gain": best,
            "hypervolume": oracle_hv,
            "hv_reference": {"gain": ref[0], "forgetting": ref[1], "cost": ref[2]},
            "noise": {"gain_sd": noise.get("gain_sd"), "forgetting_sd": noise.get("forgetting_sd")},
        },
        "setup": {
            "study": "studies/demo.yaml (native scorer), cycle 1 of the demo world",
            "pick_budget": budget,
            "trials": args.trials,
            "seeds": list(range(args.seeds)),
            "arms": {a: ARMS[a] or "the shipped config's sampler" for a in arms_out},
        },
        "full_runs": {"looked_up_in_oracle": full.looked_up, "trained": full.trained},
        "arms": arms_out,
        "by_run": done_runs,
        "seconds_this_run": round(time.perf_counter() - started),
    }
    write(out)
    for arm, rows in arms_out.items():
        m = rows["mean"]
        print(
            f"{arm:<10} pick {m['pick_relative']:.2f} of best, passes {m['pick_passes_gates_full']:.0%}, "
            f"price {m['search_over_update']:.1f} updates, HV {m['full_hv_relative_by_trials']}"
        )


if __name__ == "__main__":
    main()
