"""Benchmark: does adapter interpolation rank mixtures x replay as training them does?

    python bench/prescreen_vs_trained.py [--candidates 48] [--trained 12] [--fractions 0.1 0.25 1.0]

The prescreen (`recipe_opt.study.run_prescreen`, after OP-Mix, arXiv 2605.15220) trains one probe
per new source and one on replay at a fraction of the anchor recipe's steps, then scores every
candidate mixture x replay by adding the matching combination of the probes' weight deltas to
the base (evaluation only). Here, on the demo world's cycle 1 (studies/demo.yaml, native scorer,
every eval item):

* the first `--trained` candidates (scrambled Sobol points, so an unbiased spread) are trained
  for real at full fidelity (every step of the anchor's budget) and scored the same way;
* per probe fraction: Spearman rho of simulated vs trained gain and forgetting over those
  candidates, whether the gate verdicts agree, the trained gain of the prescreen's best in-gate
  candidate over the best trained in-gate one, and the probes' compute over one full update of
  the anchor (what the prescreen costs), against `--trained` proxy trials at the demo's 0.25.

Resumable (each full run is cached by recipe hash and base). Writes bench/results/prescreen_vs_trained.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cycles import REPO, base_fingerprint, runner_for, study_yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--candidates", type=int, default=48)
    ap.add_argument("--trained", type=int, default=12)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 1.0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "prescreen_vs_trained.json")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from recipe_opt.study import FullFidelity, run_prescreen, spearman

    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-prescreen-"))
    runner = runner_for(study_yaml(tmp, args.world, "prescreen", cycle=1))
    sha = base_fingerprint(runner.cfg.base_model_path)
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if data.get("base_sha256") != sha:
        data = {}  # another base's runs are not comparable
    full_runs: dict[str, Any] = data.get("full_runs", {})
    ff = FullFidelity(runner)
    started = time.perf_counter()
    by_fraction: list[dict[str, Any]] = []
    trained_set: list[Any] | None = None
    anchor = None
    for fraction in args.fractions:
        t0 = time.perf_counter()
        result = run_prescreen(
            runner.cfg,
            runner.space,
            runner.setup,
            ff.parent,
            candidates=args.candidates,
            fraction=fraction,
            evaluator=ff.evaluator,
        )
        anchor = result.anchor
        simulated = {c.recipe.content_hash: c for c in result.candidates}
        if trained_set is None:
            # The same candidates for every fraction: the first Sobol points, in draw order.
            trained_set = [c.recipe for c in sorted(result.candidates, key=lambda c: c.order)][: args.trained]
        for recipe in trained_set:
            if recipe.content_hash not in full_runs:
                done = ff.train(recipe)
                v = done.full.values
                full_runs[recipe.content_hash] = {
                    "recipe": recipe.summary(),
                    "gain": v["gain"],
                    "forgetting": v["forgetting"],
                    "cost": v["cost"],
                    "passes_gates": done.passes,
                    "seconds": round(done.seconds, 1),
                }
                print(f"  full {recipe.summary()}: gain {v['gain']:+.3f} forgetting {v['forgetting']:+.3f}", flush=True)
                data.update({"base_sha256": sha, "full_runs": full_runs})
                _save(args.out, data)
        pairs = [(simulated[r.content_hash], full_runs[r.content_hash]) for r in trained_set]
        sim_pass = [c for c, _ in pairs if c.passes]
        best_sim = max(sim_pass, key=lambda c: c.gain) if sim_pass else None
        best_true = max((f["gain"] for _, f in pairs if f["passes_gates"]), default=None)
        pick = full_runs[best_sim.recipe.content_hash] if best_sim else None
        anchor_update = pairs[0][1]["cost"] if pairs else None  # every candidate shares the anchor's steps
        row = {
            "probe_fraction": fraction,
            "n_candidates": len(result.candidates),
            "n_trained": len(pairs),
            "spearman_gain": _round(spearman([c.gain for c, _ in pairs], [f["gain"] for _, f in pairs])),
            "spearman_forgetting": _round(
                spearman([c.forgetting for c, _ in pairs], [f["forgetting"] for _, f in pairs])
            ),
            # Pearson too: most trained mixtures lie within two noise sds of each other, so rank
            # correlation is mostly noise among them; Pearson weighs the far-off mixtures it must catch.
            "pearson_gain": pearson([c.gain for c, _ in pairs], [f["gain"] for _, f in pairs]),
            "pearson_forgetting": pearson([c.forgetting for c, _ in pairs], [f["forgetting"] for _, f in pairs]),
            "trained_gain_range": [min(f["gain"] for _, f in pairs), max(f["gain"] for _, f in pairs)]
            if pairs
            else None,
            "gate_agreement": sum(c.passes == f["passes_gates"] for c, f in pairs) / len(pairs) if pairs else None,
            "pick_over_best_trained_in_gate": (pick["gain"] / best_true) if pick and best_true else None,
            "pick_passes_in_full": pick["passes_gates"] if pick else None,
            "probe_tflop": result.tflop,
            "probes_over_update": result.tflop / anchor_update if anchor_update else None,
            "proxy_trials_over_update": args.trained * runner.cfg.proxy.fraction,
            "seconds": round(time.perf_counter() - t0, 1),
            "simulated": [
                {"recipe": c.recipe.summary(), "gain": c.gain, "forgetting": c.forgetting, "passes": c.passes}
                for c, _ in pairs
            ],
        }
        by_fraction.append(row)
        print(
            f"probes at {fraction:g}: rho gain {row['spearman_gain']}, forgetting {row['spearman_forgetting']}, "
            f"gates agree {row['gate_agreement']}, pick {row['pick_over_best_trained_in_gate']}, "
            f"probes {row['probes_over_update']} of an update",
            flush=True,
        )
    data.update(
        {
            "schema": 1,
            "command": " ".join(["python", "bench/prescreen_vs_trained.py", *sys.argv[1:]]),
            "base_sha256": sha,
            "machine": {"cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform()},
            "anchor": anchor.summary() if anchor else None,
            "by_fraction": by_fraction,
            "full_runs": full_runs,
            "seconds_this_run": round(time.perf_counter() - started),
        }
    )
    _save(args.out, data)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def pearson(a: list[float], b: list[float]) -> float | None:
    import numpy as np

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
