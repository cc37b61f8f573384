"""Benchmark: sampler quality and multi-objective early stopping on the demo world, in one run.

    python bench/search_quality.py [--trials 30] [--seeds 3] [--world demo_world]

Part 1 (samplers): the default (GP after the informed initial design) vs GP, multivariate TPE
(8 random start-up trials each) and random search, at an equal number of trials, over several
seeds. Hypervolume after every trial, with a fixed reference point; and, per sampler, the trials
needed to reach random search's final hypervolume (mean over seeds).

Part 2 (early stopping): the default sampler with rung-based early stopping on vs off: proxy
compute used (TFLOP and wall seconds) and final hypervolume.

Trials are real proxy fine-tunes of the demo world's v0, scored by the native scorer (the same
metric as lm-eval, 7x cheaper) with the demo study's proxy at a 0.1 fraction, so the whole
benchmark fits in about 20 minutes on 2 CPU cores. Gates are off here: the benchmark measures how
well each sampler covers the whole trade-off. Writes bench/results/search_quality.json.

Hypervolume is computed on (-gain, forgetting, cost / 1 TFLOP), all minimised, with reference
point (0.1, 1.1, 1.1): a recipe counts if it gains more than -0.1, forgets less than 1.1 and
costs less than 1.1 TFLOP (every recipe of the default space costs less than 0.8).
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

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE = np.array([0.1, 1.1, 1.1])

SAMPLERS = {
    "default (gp + informed design)": {"name": "gp", "n_startup_trials": 8, "initial_design": "informed"},
    "gp": {"name": "gp", "n_startup_trials": 8, "initial_design": "none"},
    "tpe (multivariate)": {"name": "tpe", "n_startup_trials": 8, "initial_design": "none"},
    "random": {"name": "random", "initial_design": "none"},
}


def _study_yaml(
    directory: Path, world: Path, name: str, sampler: dict[str, Any], seed: int, trials: int, early: bool
) -> Path:
    cfg = yaml.safe_load((REPO / "studies" / "demo.yaml").read_text())
    cfg.update(
        {
            "name": name,
            "base_model": str(world / "models" / "v0"),
            "data_root": str(world / "data"),
            "search_space": str(REPO / "search_spaces" / "default.yaml"),
            "storage": f"sqlite:///{directory / 'bench.db'}",
            "output_dir": str(directory / name),
            "seed": seed,
            "sampler": sampler,
            "trials": {"n_trials": trials},
            "gates": {"max_forgetting": None},
            "early_stopping": {"enabled": early, "rungs": [0.25, 0.5], "min_dominating": 2, "min_trials_at_rung": 4},
        }
    )
    cfg["evaluation"]["backend"] = "native"
    cfg["evaluation"]["tasks_dir"] = str(REPO / "evaluators" / "demo")
    cfg["proxy"]["fraction"] = 0.1
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hv_history(study: Any) -> list[float]:
    import optuna
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG implementation

    points: list[list[float]] = []
    history = []
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            m = t.user_attrs["metrics"]
            p = [-m["gain"], m["forgetting"], m["cost"]]
            if all(x < r for x, r in zip(p, REFERENCE, strict=True)):
                points.append(p)
        history.append(float(compute_hypervolume(np.array(points), REFERENCE)) if points else 0.0)
    return history


def _run(cfg_path: Path) -> tuple[Any, float]:
    from recipe_opt.config import load_study_config
    from recipe_opt.space import load_search_space
    from recipe_opt.study import StudyRunner

    cfg = load_study_config(cfg_path)
    space = load_search_space(cfg.search_space_path, list(cfg.sources.new))
    start = time.perf_counter()
    study = StudyRunner(cfg, space).run()
    return study, time.perf_counter() - start


def _trials_to_reach(history: list[float], target: float) -> int | None:
    return next((i + 1 for i, hv in enumerate(history) if hv >= target - 1e-12), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search_quality.json")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import optuna
    import torch

    from recipe_opt.demo import build_world
    from recipe_opt.study import proxy_compute

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(os.cpu_count() or 1)
    if not (args.world / "world.json").is_file():
        build_world(args.world)
    seeds = list(range(args.seeds))
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-bench-"))
    started = time.perf_counter()

    # ---- part 1: samplers -----------------------------------------------------------------
    histories: dict[str, list[list[float]]] = {}
    for label, sampler in SAMPLERS.items():
        for seed in seeds:
            name = f"s-{sampler['name']}-{sampler.get('initial_design')}-{seed}"
            study, seconds = _run(_study_yaml(tmp, args.world, name, sampler, seed, args.trials, early=False))
            histories.setdefault(label, []).append(_hv_history(study))
            print(f"{label:<32} seed {seed}: final HV {histories[label][-1][-1]:.4f} ({seconds:.0f} s)", flush=True)

    random_final = statistics.fmean(h[-1] for h in histories["random"])
    samplers_out: dict[str, Any] = {}
    for label, runs in histories.items():
        mean_curve = [statistics.fmean(h[i] for h in runs) for i in range(args.trials)]
        samplers_out[label] = {
            "config": SAMPLERS[label],
            "mean_hv_by_trial": [round(x, 5) for x in mean_curve],
            "final_hv_per_seed": [round(h[-1], 5) for h in runs],
            "mean_final_hv": round(mean_curve[-1], 5),
            "trials_to_reach_random_final_hv": _trials_to_reach(mean_curve, random_final),
            "hv_at": {str(n): round(mean_curve[n - 1], 5) for n in (10, 20, args.trials) if n <= args.trials},
        }

    # ---- part 2: early stopping on vs off ----------------------------------------------------
    default = SAMPLERS["default (gp + informed design)"]
    early_out: dict[str, Any] = {}
    for early in (False, True):
        runs = []
        for seed in seeds:
            name = f"es-{int(early)}-{seed}"
            study, seconds = _run(_study_yaml(tmp, args.world, name, default, seed, args.trials, early=early))
            states = [t.state.name for t in study.trials]
            runs.append(
                {
                    "seed": seed,
                    "final_hv": round(_hv_history(study)[-1], 5),
                    "proxy_tflops": round(proxy_compute(study), 4),
                    "wall_seconds": round(seconds, 1),
                    "pruned": states.count("PRUNED"),
                    "complete": states.count("COMPLETE"),
                }
            )
            print(f"early stopping {'on ' if early else 'off'} seed {seed}: {runs[-1]}", flush=True)
        early_out["on" if early else "off"] = {
            "runs": runs,
            "mean_final_hv": round(statistics.fmean(r["final_hv"] for r in runs), 5),
            "mean_proxy_tflops": round(statistics.fmean(r["proxy_tflops"] for r in runs), 4),
            "mean_wall_seconds": round(statistics.fmean(r["wall_seconds"] for r in runs), 1),
            "mean_pruned": round(statistics.fmean(r["pruned"] for r in runs), 2),
        }
    off, on = early_out["off"], early_out["on"]
    early_out["compute_saved"] = round(1 - on["mean_proxy_tflops"] / off["mean_proxy_tflops"], 3)
    early_out["wall_time_saved"] = round(1 - on["mean_wall_seconds"] / off["mean_wall_seconds"], 3)
    early_out["final_hv_ratio_on_vs_off"] = round(on["mean_final_hv"] / off["mean_final_hv"], 3)

    out = {
        "command": f"python bench/search_quality.py --trials {args.trials} --seeds {args.seeds}",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "setup": {
            "world": "demo world (seed 0)",
            "proxy_fraction": 0.1,
            "scorer": "native",
            "trials": args.trials,
            "seeds": seeds,
            "hv_reference_point": REFERENCE.tolist(),
            "hv_space": "(-gain, forgetting, cost TFLOP), minimised",
        },
        "random_mean_final_hv": round(random_final, 5),
        "samplers": samplers_out,
        "early_stopping": early_out,
        "total_seconds": round(time.perf_counter() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "samplers"}, indent=2))
    for label, row in samplers_out.items():
        print(
            f"{label:<32} final HV {row['mean_final_hv']:.4f}  "
            f"reaches random's final in {row['trials_to_reach_random_final_hv']}"
        )


if __name__ == "__main__":
    main()
