"""Benchmark: warm start from the lineage vs cold start, on cycle 2 of the demo world.

    python bench/warm_start.py [--trials 16] [--seeds 3] [--warm-recipes 3 8] [--world demo_world]

In one run: cycle 1 (v0 + mul, add_text) is searched with the default sampler, its recipe
selected and applied at full fidelity, giving v1 (as `recipe-opt search` + `apply` do). Cycle 2
(v1 + max, mul_text, replaying v0's and cycle 1's data) is then searched per seed with the
default sampler (GP after the informed initial design): cold, and warm-started from cycle 1 with
each `warm_start.max_recipes` in `--warm-recipes` (cycle 1's selected recipe and Pareto recipes
spread over its front enqueued first; the informed design fills the rest of its 8 slots). For
each seed and arm: hypervolume and best in-gate gain after every trial, and the trials needed to
reach the cold study's final hypervolume. Writes bench/results/warm_start.json.

Hypervolume as in bench/search_quality.py: (-gain, forgetting, cost TFLOP) minimised, reference
point (0.1, 1.1, 1.1). Proxies at fraction 0.1, native scorer, gates as in studies/demo-cycle-2.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _cycles import REPO, run_study, runner_for, study_yaml
from search_quality import REFERENCE, _hv_history, _trials_to_reach

DEFAULT_SAMPLER = {"name": "gp", "n_startup_trials": 8, "initial_design": "informed"}


def _best_feasible_gain(study: Any) -> list[float | None]:
    """Best gain among trials that pass every gate, after each trial (None until one does)."""
    best: float | None = None
    out: list[float | None] = []
    for t in study.trials:
        if t.state.name == "COMPLETE" and all(v <= 0 for v in t.constraints.values()):
            best = t.values[0] if best is None else max(best, t.values[0])
        out.append(None if best is None else round(best, 4))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--cycle1-trials", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--warm-recipes", type=int, nargs="+", default=[3, 8], help="warm_start.max_recipes per arm")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "warm_start.json")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import optuna
    import torch

    from recipe_opt.demo import build_world
    from recipe_opt.study import apply_selected, record_selection, select_recipe

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(os.cpu_count() or 1)
    if not (args.world / "world.json").is_file():
        build_world(args.world)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-warm-"))
    models = tmp / "models"
    started = time.perf_counter()

    # ---- cycle 1: search, select, apply -> v1 ------------------------------------------------
    c1 = study_yaml(
        tmp,
        args.world,
        "cycle-1",
        cycle=1,
        trials=args.cycle1_trials,
        sampler=DEFAULT_SAMPLER,
        fraction=0.1,
        models_dir=models,
    )
    study1, s1 = run_study(c1)
    runner1 = runner_for(c1)
    selected = select_recipe(study1, runner1.cfg)
    record_selection(runner1.cfg, study1, runner1.space, selected)
    applied = apply_selected(runner1.cfg, runner1, study1)
    print(
        f"cycle 1: {len(study1.trials)} trials in {s1:.0f} s; selected trial {selected.trial_number}; "
        f"v1 {'released' if applied.released else 'REJECTED'} (full gain {applied.full.values['gain']:+.3f}, "
        f"forgetting {applied.full.values['forgetting']:+.3f})",
        flush=True,
    )
    del runner1

    # ---- cycle 2: cold vs warm, per seed -------------------------------------------------------
    arms = {"cold": 0, **{f"warm-{k}": k for k in args.warm_recipes}}
    runs: dict[str, list[list[float]]] = {a: [] for a in arms}
    gains: dict[str, list[list[float | None]]] = {a: [] for a in arms}
    seconds: dict[str, list[float]] = {a: [] for a in arms}
    for seed in range(args.seeds):
        for arm, k in arms.items():
            cfg = study_yaml(
                tmp,
                args.world,
                f"cycle-2-{arm}-{seed}",
                cycle=2,
                base_model=models / "v1",
                seed=seed,
                trials=args.trials,
                sampler=DEFAULT_SAMPLER,
                fraction=0.1,
                warm_start=["cycle-1"] if k else None,
                warm_recipes=max(1, k),
            )
            study, sec = run_study(cfg, warm=bool(k))
            runs[arm].append(_hv_history(study))
            gains[arm].append(_best_feasible_gain(study))
            seconds[arm].append(sec)
            print(
                f"cycle 2 {arm} seed {seed}: final HV {runs[arm][-1][-1]:.4f}, best in-gate gain "
                f"{gains[arm][-1][-1]} ({sec:.0f} s)",
                flush=True,
            )

    per_seed = []
    for seed in range(args.seeds):
        cold_final = runs["cold"][seed][-1]
        row: dict[str, Any] = {"seed": seed}
        for arm in arms:
            row[arm] = {
                "final_hv": round(runs[arm][seed][-1], 5),
                "hv_at_8": round(runs[arm][seed][min(7, args.trials - 1)], 5),
                "trials_to_reach_cold_final_hv": _trials_to_reach(runs[arm][seed], cold_final),
                "trials_to_reach_95pct_cold_final_hv": _trials_to_reach(runs[arm][seed], 0.95 * cold_final),
                "first_feasible_trial": next((i + 1 for i, g in enumerate(gains[arm][seed]) if g is not None), None),
                "best_in_gate_gain": gains[arm][seed][-1],
            }
        per_seed.append(row)
    mean = {a: [statistics.fmean(h[i] for h in runs[a]) for i in range(args.trials)] for a in arms}
    out = {
        "command": f"python bench/warm_start.py --trials {args.trials} --seeds {args.seeds} "
        f"--warm-recipes {' '.join(map(str, args.warm_recipes))}",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "setup": {
            "world": "demo world (seed 0); cycle 2 = v1 + max, mul_text",
            "cycle1": {
                "trials": args.cycle1_trials,
                "selected_trial": selected.trial_number,
                "v1_released": applied.released,
                "v1_full": applied.full.values,
            },
            "sampler": DEFAULT_SAMPLER,
            "proxy_fraction": 0.1,
            "scorer": "native",
            "trials": args.trials,
            "hv_reference_point": REFERENCE.tolist(),
            "gates": "as in studies/demo-cycle-2.yaml",
        },
        "per_seed": per_seed,
        "mean_final_hv": {a: round(c[-1], 5) for a, c in mean.items()},
        "mean_hv_at_8": {a: round(c[min(7, args.trials - 1)], 5) for a, c in mean.items()},
        "mean_trials_to_reach_mean_cold_final_hv": {a: _trials_to_reach(c, mean["cold"][-1]) for a, c in mean.items()},
        "mean_best_in_gate_gain": {
            a: round(statistics.fmean(g[-1] for g in gains[a] if g[-1] is not None), 4) for a in arms
        },
        "mean_seconds": {a: round(statistics.fmean(v), 1) for a, v in seconds.items()},
        "mean_hv_by_trial": {a: [round(x, 5) for x in c] for a, c in mean.items()},
        "hv_by_trial": {a: [[round(x, 5) for x in h] for h in runs[a]] for a in arms},
        "best_in_gate_gain_by_trial": gains,
        "total_seconds": round(time.perf_counter() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    skip = ("mean_hv_by_trial", "hv_by_trial", "best_in_gate_gain_by_trial")
    print(json.dumps({k: v for k, v in out.items() if k not in skip}, indent=2))


if __name__ == "__main__":
    main()
