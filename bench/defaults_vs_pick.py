"""Benchmark: does the selected recipe beat the defaults users would reach for anyway?

    python bench/defaults_vs_pick.py [--recipe reports/demo-cycle-1/recipe.yaml] [--seeds 3]

At full fidelity on the demo world's cycle-1 update (v0 + mul, add_text; every step, every eval
item, native scorer), over several training seeds:

* the recipe `recipe-opt search studies/demo.yaml` selected (the README's demo writes it to
  reports/demo-cycle-1/recipe.yaml);
* LLaMA-Factory's LoRA defaults: rank 8, alpha 16, LR 1e-4, cosine, warmup 0.1, dropout 0,
  all linear layers, no replay;
* litgpt's LoRA defaults: rank 8, alpha 16, LR 3e-4, dropout 0.05, query and value only,
  100 warmup steps then cosine, no replay.

The defaults get the selected recipe's budget (steps, batch) and data mixture, so only what a
user would copy from those tools differs. Then a replay sweep (0, 5, 10, 25, 50%) of the
selected recipe shows how forgetting and gain move with replay. Gain and forgetting are against
v0; cost is the measured TFLOP of the run. Writes bench/results/defaults_vs_pick.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _cycles import REPO, full_runs, study_yaml

REPLAY_SWEEP = (0.0, 0.05, 0.10, 0.25, 0.50)


def baselines(selected: Any) -> dict[str, Any]:
    from recipe_opt.recipe import Adapter, Replay, Schedule

    steps = selected.budget.steps
    all_linear = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    return {
        "selected (recipe-opt)": selected,
        "LLaMA-Factory defaults": replace(
            selected,
            replay=Replay(0.0),
            schedule=Schedule(1e-4, 0.1, "cosine"),
            adapter=Adapter(8, 2.0, all_linear, 0.0),
        ),
        "litgpt defaults": replace(
            selected,
            replay=Replay(0.0),
            schedule=Schedule(3e-4, min(1.0, 100 / steps), "cosine"),
            adapter=Adapter(8, 2.0, ("q_proj", "v_proj"), 0.05),
        ),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in ("gain", "forgetting", "cost"):
        vals = [r[key] for r in runs]
        out[key] = {"mean": round(statistics.fmean(vals), 4), "std": round(statistics.pstdev(vals), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--recipe", type=Path, default=REPO / "reports" / "demo-cycle-1" / "recipe.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "defaults_vs_pick.json")
    args = ap.parse_args()
    if not args.recipe.is_file():
        ap.error(f"{args.recipe}: no selected recipe; run `recipe-opt search studies/demo.yaml` first")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from recipe_opt.recipe import Recipe, Replay

    torch.set_num_threads(os.cpu_count() or 1)
    selected = Recipe.load(args.recipe)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-defaults-"))
    cfg = study_yaml(tmp, args.world, "defaults", cycle=1)
    started = time.perf_counter()
    seeds = list(range(args.seeds))

    arms = baselines(selected)
    sweep = {f"replay {r:.0%}": replace(selected, replay=Replay(r)) for r in REPLAY_SWEEP}
    jobs = [
        (group, label, replace(recipe, seed=s))
        for group, recipes in (("compare", arms), ("sweep", sweep))
        for label, recipe in recipes.items()
        for s in seeds
    ]
    print(f"{len(jobs)} full-fidelity runs of {selected.budget.steps} steps", flush=True)
    results = full_runs(cfg, [j[2] for j in jobs])
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {"compare": {}, "sweep": {}}
    for (group, label, recipe), res in zip(jobs, results, strict=True):
        grouped[group].setdefault(label, []).append({"seed": recipe.seed, **res})

    out = {
        "command": f"python bench/defaults_vs_pick.py --seeds {args.seeds}",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "setup": {
            "world": "demo world (seed 0), cycle 1: v0 + mul, add_text",
            "selected_recipe": selected.to_dict(),
            "selected_summary": selected.summary(),
            "fidelity": "full: every step at the recipe's batch size, every eval item, native scorer",
            "seeds": seeds,
            "baselines": {k: v.summary() for k, v in arms.items()},
        },
        "compare": {label: _summary(runs) for label, runs in grouped["compare"].items()},
        "replay_sweep": {label: _summary(runs) for label, runs in grouped["sweep"].items()},
        "total_seconds": round(time.perf_counter() - started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for section in ("compare", "replay_sweep"):
        for label, row in out[section].items():  # type: ignore[attr-defined]
            print(
                f"{label:<24} gain {row['gain']['mean']:+.3f} ± {row['gain']['std']:.3f}  forgetting "
                f"{row['forgetting']['mean']:+.3f} ± {row['forgetting']['std']:.3f}  cost {row['cost']['mean']:.3g}"
            )


if __name__ == "__main__":
    main()
