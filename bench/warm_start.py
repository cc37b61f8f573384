"""Benchmark: warm start from the lineage vs cold start, on cycle 2 of the demo world.

    python bench/warm_start.py [--trials 16] [--seeds 3] [--world demo_world]

In one run: cycle 1 (v0 + mul, add_text) is searched with the default sampler, its recipe
selected and applied at full fidelity, giving v1 (as `recipe-opt search` + `apply` do). Cycle 2
(v1 + max, mul_text, replaying v0's and cycle 1's data) is then searched per seed twice with the
default sampler (GP after the informed initial design): cold, and warm-started from cycle 1
(`--warm-start auto`: its selected recipe and up to 7 Pareto recipes enqueued first, in place of
the informed design). For each seed: hypervolume after every trial, and the trials the warm
study needs to reach the cold study's final hypervolume. Writes bench/results/warm_start.json.

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

from _cycles import REPO, run_study, runner_for, study_yaml
from search_quality import REFERENCE, _hv_history, _trials_to_reach

DEFAULT_SAMPLER = {"name": "gp", "n_startup_trials": 8, "initial_design": "informed"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--cycle1-trials", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=3)
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
    runs: dict[str, list[list[float]]] = {"cold": [], "warm": []}
    seconds: dict[str, list[float]] = {"cold": [], "warm": []}
    for seed in range(args.seeds):
        for mode in ("cold", "warm"):
            cfg = study_yaml(
                tmp,
                args.world,
                f"cycle-2-{mode}-{seed}",
                cycle=2,
                base_model=models / "v1",
                seed=seed,
                trials=args.trials,
                sampler=DEFAULT_SAMPLER,
                fraction=0.1,
                warm_start=["cycle-1"] if mode == "warm" else None,
            )
            study, sec = run_study(cfg, warm=mode == "warm")
            runs[mode].append(_hv_history(study))
            seconds[mode].append(sec)
            print(f"cycle 2 {mode} seed {seed}: final HV {runs[mode][-1][-1]:.4f} ({sec:.0f} s)", flush=True)

    per_seed = []
    for seed in range(args.seeds):
        cold_final = runs["cold"][seed][-1]
        per_seed.append(
            {
                "seed": seed,
                "cold_final_hv": round(cold_final, 5),
                "warm_final_hv": round(runs["warm"][seed][-1], 5),
                "warm_trials_to_reach_cold_final": _trials_to_reach(runs["warm"][seed], cold_final),
                "cold_trials_to_reach_cold_final": _trials_to_reach(runs["cold"][seed], cold_final),
                "warm_trials_to_reach_95pct_cold_final": _trials_to_reach(runs["warm"][seed], 0.95 * cold_final),
                "cold_trials_to_reach_95pct_cold_final": _trials_to_reach(runs["cold"][seed], 0.95 * cold_final),
                "warm_hv_at_8": round(runs["warm"][seed][min(7, args.trials - 1)], 5),
                "cold_hv_at_8": round(runs["cold"][seed][min(7, args.trials - 1)], 5),
            }
        )
    mean = {m: [statistics.fmean(h[i] for h in runs[m]) for i in range(args.trials)] for m in runs}
    reached = [r["warm_trials_to_reach_cold_final"] for r in per_seed]
    out = {
        "command": f"python bench/warm_start.py --trials {args.trials} --seeds {args.seeds}",
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
        },
        "per_seed": per_seed,
        "mean_hv_by_trial": {m: [round(x, 5) for x in c] for m, c in mean.items()},
        "hv_by_trial": {m: [[round(x, 5) for x in h] for h in runs[m]] for m in runs},
        "mean_final_hv": {m: round(c[-1], 5) for m, c in mean.items()},
        "warm_trials_to_reach_cold_final_hv": reached,
        "mean_warm_trials_to_reach_cold_final_hv": (
            round(statistics.fmean(r for r in reached if r is not None), 2)
            if any(r is not None for r in reached)
            else None
        ),
        "mean_trials_to_reach_mean_cold_final_hv": {m: _trials_to_reach(c, mean["cold"][-1]) for m, c in mean.items()},
        "mean_seconds": {m: round(statistics.fmean(v), 1) for m, v in seconds.items()},
        "total_seconds": round(time.perf_counter() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("mean_hv_by_trial", "hv_by_trial")}, indent=2))


if __name__ == "__main__":
    main()
