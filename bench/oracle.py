"""Benchmark: the full-fidelity oracle of a demo-world update, the ground truth for the search.

    python bench/oracle.py --cycle 1 [--n 128] [--noise 16] [--noise-seeds 3]
    python bench/oracle.py --cycle 2 --base demo_world/models/v1 [--n 64]

Every recipe here is trained exactly as `apply` trains it and scored on every item of every
suite (`recipe_opt.study.FullFidelity`, the path `recipe-opt train` and `apply`'s baselines
use), on the demo world's cycle-`N` update, with the native scorer (lm-eval's metric, 7x
cheaper; a test checks they agree exactly). The recipes:

* `--n` points of a scrambled Sobol sample over every parameter of search_spaces/default.yaml,
  the mixture included (each point of [0, 1]^d answers the space's suggest calls in order);
* the eight recipes of the informed design (parameters a design point leaves open are filled
  from a Sobol point of their own);
* LLaMA-Factory's and litgpt's LoRA defaults (`recipe_opt.registry.BASELINES`), on the budget
  and mixture of the pick of the README's search (`--pick`, default reports/demo-cycle-N/recipe.yaml);
* then `--noise` recipes spread evenly over the measured gain range, trained again with
  training seeds 1 .. `--noise-seeds - 1`: the noise floor at full fidelity.

Resumable: each run is written to the JSON (atomically) as it finishes, keyed by recipe hash and
seed, and a restarted run skips what is there. The file keeps the base model's sha256 and refuses
to mix in runs of another base (`--restart` discards them). Writes bench/results/oracle_cycle<N>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _cycles import REPO, base_fingerprint, runner_for, study_yaml

SCHEMA = 1


class UnitCubeTrial:
    """Answers a search space's suggest calls from one point of [0, 1]^d, in call order.

    A float range maps linearly (or on the log scale), an int range to one of its grid values
    with equal mass, a categorical to one of its choices with equal mass. Parameters in `fixed`
    (an informed-design point) take their given values and use no coordinate.
    """

    def __init__(self, point: list[float] | None, fixed: dict[str, Any] | None = None) -> None:
        self.point = list(point or [])
        self.fixed = fixed or {}
        self.used = 0
        self.params: dict[str, Any] = {}

    def _u(self) -> float:
        u = self.point[self.used] if self.used < len(self.point) else 0.5
        self.used += 1
        return min(max(u, 0.0), 1.0 - 1e-12)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if name in self.fixed:
            v = float(self.fixed[name])
        else:
            u = self._u()
            if log:
                v = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
            elif step:
                n = round((high - low) / step)
                v = low + min(n, int(u * (n + 1))) * step
            else:
                v = low + u * (high - low)
        self.params[name] = v
        return v

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if name in self.fixed:
            v = int(self.fixed[name])
        else:
            u = self._u()
            if log:
                # As Optuna draws a log int: uniform in log over [low - 0.5, high + 0.5], rounded.
                lo, hi = math.log(max(low - 0.5, 1e-9)), math.log(high + 0.5)
                v = min(max(round(math.exp(lo + u * (hi - lo))), low), high)
            else:
                n = (high - low) // step
                v = low + min(n, int(u * (n + 1))) * step
        self.params[name] = v
        return v

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        v = self.fixed[name] if name in self.fixed else choices[min(len(choices) - 1, int(self._u() * len(choices)))]
        self.params[name] = v
        return v


def dimensions(space: Any) -> int:
    """How many coordinates the space's suggest calls use (its non-pinned parameters)."""
    probe = UnitCubeTrial(None)
    space.sample(probe)
    return probe.used


def sobol(d: int, n: int, seed: int) -> list[list[float]]:
    from scipy.stats import qmc

    return qmc.Sobol(d, scramble=True, seed=seed).random(n).tolist()


def design(space: Any, pick: Any, sets: dict[str, Any], n: int, seed: int) -> list[tuple[str, Any, dict[str, Any]]]:
    """(label, recipe, params) of every oracle recipe, in order."""
    from recipe_opt.registry import BASELINES

    d = dimensions(space)
    points = sobol(d, n, seed)  # n a power of 2 keeps the sample's balance
    fillers = sobol(d, 8, seed + 1)  # what the informed design's points leave open
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for i, u in enumerate(points):
        t = UnitCubeTrial(u)
        out.append((f"sobol-{i:03d}", space.sample(t), t.params))
    for i, (point, u) in enumerate(zip(space.informed_design(), fillers, strict=False)):
        t = UnitCubeTrial(u, fixed=point)
        out.append((f"informed-{i}", space.sample(t), t.params))
    if pick is not None:
        for entry in BASELINES:
            out.append((entry.name, entry.build(pick, sets), {}))
    return out


def load(path: Path) -> dict[str, Any]:
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("schema") == SCHEMA:
            return data
    return {}


def save(path: Path, data: dict[str, Any]) -> None:
    from recipe_opt._files import write_atomic

    write_atomic(path, json.dumps(data, indent=1) + "\n")


def noise_summary(runs: dict[str, dict[str, Any]], hashes: list[str]) -> dict[str, Any]:
    """Spread of gain and forgetting over training seeds, per recipe and pooled."""
    per: list[dict[str, Any]] = []
    for h in hashes:
        # A seed is part of a recipe's hash: its other seeds point back at it (`noise_of`).
        rs = [r for r in runs.values() if r["recipe_hash"] == h or r.get("noise_of") == h]
        if len(rs) < 2:
            continue
        g, f = [r["gain"] for r in rs], [r["forgetting"] for r in rs]
        per.append(
            {
                "recipe_hash": h,
                "label": rs[0]["label"],
                "seeds": sorted(r["seed"] for r in rs),
                "gain": g,
                "forgetting": f,
                "gain_sd": statistics.stdev(g),
                "forgetting_sd": statistics.stdev(f),
            }
        )
    if not per:
        return {"recipes": []}
    # Pooled within-recipe standard deviation: sqrt of the mean of the per-recipe variances.
    return {
        "recipes": per,
        "n_recipes": len(per),
        "gain_sd": math.sqrt(statistics.fmean(p["gain_sd"] ** 2 for p in per)),
        "forgetting_sd": math.sqrt(statistics.fmean(p["forgetting_sd"] ** 2 for p in per)),
        "gain_sd_max": max(p["gain_sd"] for p in per),
        "forgetting_sd_max": max(p["forgetting_sd"] for p in per),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycle", type=int, choices=(1, 2), default=1)
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--base", type=Path, default=None, help="the base model (cycle 2: the v1 `apply` made)")
    ap.add_argument("--pick", type=Path, default=None, help="the search's pick, for the defaults' budget")
    ap.add_argument("--n", type=int, default=None, help="Sobol points (default 128 for cycle 1, 64 for cycle 2)")
    ap.add_argument("--noise", type=int, default=16)
    ap.add_argument("--noise-seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="the Sobol scramble")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--space", type=Path, default=None, help="the search space (default search_spaces/default.yaml)")
    ap.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs (resume later)")
    ap.add_argument("--restart", action="store_true", help="discard runs measured on another base model")
    args = ap.parse_args()
    n = args.n or (128 if args.cycle == 1 else 64)
    out_path = args.out or REPO / "bench" / "results" / f"oracle_cycle{args.cycle}.json"
    pick_path = args.pick or REPO / "reports" / f"demo-cycle-{args.cycle}" / "recipe.yaml"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from recipe_opt.recipe import Recipe
    from recipe_opt.study import FullFidelity
    from recipe_opt.train import query_value_modules, resolve_target_modules

    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-oracle-"))
    cfg_path = study_yaml(
        tmp, args.world, f"oracle-{args.cycle}", cycle=args.cycle, base_model=args.base, space=args.space
    )
    runner = runner_for(cfg_path)
    ff = FullFidelity(runner)
    model = runner.setup.base.model
    sets = {
        "all-linear": resolve_target_modules(model, ["all-linear"], where="oracle", model_ref="base"),
        "query-value": query_value_modules(model),
    }
    pick = Recipe.load(pick_path) if pick_path.is_file() else None
    if pick is None:
        print(f"no pick at {pick_path}: the LLaMA-Factory and litgpt defaults are left out", file=sys.stderr)
    recipes = design(runner.space, pick, sets, n, args.seed)

    data = load(out_path)
    base_sha = base_fingerprint(runner.cfg.base_model_path)
    if data.get("runs") and data.get("base_sha256") != base_sha:
        if not args.restart:
            sys.exit(
                f"error: {out_path}: its {len(data['runs'])} runs were measured on a base model with sha256 "
                f"{str(data.get('base_sha256'))[:12]}, but {runner.cfg.base_model_path} has {base_sha[:12]} "
                "(a demo world built on another CPU differs bit-wise); pass --restart to measure afresh"
            )
        print(f"--restart: discarding {len(data['runs'])} runs measured on another base model", flush=True)
        data = {}
    data["base_sha256"] = base_sha
    runs: dict[str, dict[str, Any]] = data.get("runs", {})
    started = time.perf_counter()
    new_runs = 0

    def run(label: str, recipe: Any, params: dict[str, Any], noise_of: str | None = None) -> bool:
        nonlocal new_runs
        key = f"{recipe.content_hash}:{recipe.seed}"
        if key in runs:
            return True
        if args.max_runs is not None and new_runs >= args.max_runs:
            return False
        done = ff.train(recipe, label=label)
        runs[key] = {**done.to_dict(), "params": params, **({"noise_of": noise_of} if noise_of else {})}
        new_runs += 1
        v = done.full.values
        print(
            f"[{len(runs)}] {label} seed {recipe.seed}: gain {v['gain']:+.3f} forgetting {v['forgetting']:+.3f} "
            f"cost {v['cost']:.3g} TFLOP gates {'pass' if done.passes else 'fail'} ({done.seconds:.0f} s)",
            flush=True,
        )
        data.update(
            {
                "schema": SCHEMA,
                "command": " ".join(["python", "bench/oracle.py", *sys.argv[1:]]),
                "cycle": args.cycle,
                "runs": runs,
            }
        )
        save(out_path, data)
        return True

    print(f"{len(recipes)} recipes at full fidelity ({len(runs)} runs already in {out_path})", flush=True)
    complete = all(run(label, r, p) for label, r, p in recipes)
    # The noise floor: recipes spread evenly over the measured gain range, more training seeds.
    first = [runs[f"{r.content_hash}:{r.seed}"] for _, r, _ in recipes if f"{r.content_hash}:{r.seed}" in runs]
    by_gain = sorted(first, key=lambda x: x["gain"])
    k = min(args.noise, len(by_gain))
    chosen = [by_gain[round(i * (len(by_gain) - 1) / max(1, k - 1))] for i in range(k)] if complete else []
    chosen = list({c["recipe_hash"]: c for c in chosen}.values())
    for c in chosen:
        base = Recipe.from_dict(c["recipe"])
        for s in range(1, args.noise_seeds):
            complete = run(c["label"], replace(base, seed=base.seed + s), c["params"], c["recipe_hash"]) and complete
    data.update(
        {
            "schema": SCHEMA,
            "command": " ".join(["python", "bench/oracle.py", *sys.argv[1:]]),
            "cycle": args.cycle,
            "complete": complete and len(chosen) == k,
            "machine": {"cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform()},
            "setup": {
                "world": f"demo world (seed 0), cycle {args.cycle}",
                "study": f"studies/{'demo.yaml' if args.cycle == 1 else 'demo-cycle-2.yaml'} with the native scorer",
                "base_model": str(runner.cfg.base_model_path.relative_to(REPO))
                if runner.cfg.base_model_path.is_relative_to(REPO)
                else str(runner.cfg.base_model_path),
                "fidelity": "full: every step at the recipe's batch size, every example, every eval item",
                "gates": runner.cfg.gates.model_dump(mode="json"),
                "sobol": {"n": n, "dimensions": dimensions(runner.space), "scramble_seed": args.seed},
                "pick": pick.to_dict() if pick is not None else None,
            },
            "recipes": [{"label": label, "recipe_hash": r.content_hash, "seed": r.seed} for label, r, _ in recipes],
            "noise": noise_summary(runs, [c["recipe_hash"] for c in chosen]),
            "runs": runs,
        }
    )
    data["seconds_this_run"] = round(time.perf_counter() - started)
    save(out_path, data)
    passing = [r for r in first if r["passes_gates"]]
    best = max(passing, key=lambda r: r["gain"], default=None)
    print(f"{len(first)} recipes, {len(passing)} pass the gates at full fidelity", flush=True)
    if best is not None:
        print(f"best in-gate gain {best['gain']:+.3f} ({best['label']})", flush=True)
    noise = data["noise"]
    if noise.get("n_recipes"):
        print(f"noise floor: gain sd {noise['gain_sd']:.3f}, forgetting sd {noise['forgetting_sd']:.3f}", flush=True)


if __name__ == "__main__":
    main()
