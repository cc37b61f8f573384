"""Benchmark: which cheap run predicts the full update? Proxy fidelities against the oracle.

    python bench/fidelity_vs_oracle.py [--cycle 1] [--specs compressed:0.25 prefix:0.1 anneal:0.067+0.033]

Every recipe the oracle trained at full fidelity (seed 0: its Sobol points and informed design,
`bench/results/oracle_cycle<N>.json`) is run again at each cheap fidelity, scored on every item
with the same scorer against the same base, and each fidelity is judged by how it ranks the
recipes against their full runs:

* `compressed:F[@B]` - today's proxy: the whole schedule squeezed into F of the steps (the demo's
  0.25), at batch B if given (the recipe's own otherwise);
* `prefix:F` - the first F of the full update's own schedule, scored where it stops (continuable);
* `anneal:F+A` - the first F of the full schedule, scored after a branch of A more steps (as a
  share of the full steps) that decays the LR linearly to 0 (continuable from before the branch).

Per fidelity: Spearman rho of gain and of forgetting against the full runs, the share of recipes
on which its gate verdict agrees with the full run's, and the pick: the best-gain recipe among
those it says pass every gate, as a share of the best in-gate full-run gain (and whether that
recipe passes in full). Compute is the run's training FLOPs over the full run's. Resumable (each
run is written as it finishes); refuses an oracle measured on another base. Writes
bench/results/fidelity_vs_oracle.json.
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

DEFAULT_SPECS = [
    "compressed:0.25",  # today's demo proxy
    "compressed:0.05@8",  # the budgeted search's screen: 5% of the steps at batch 8
    "compressed:0.1",
    "prefix:0.1",
    "anneal:0.067+0.033",
]


def spearman(a: list[float], b: list[float]) -> float | None:
    """The lineage's own Spearman rho (`recipe_opt.study.spearman`), rounded for the table."""
    from recipe_opt.study import spearman as rho

    value = rho(a, b)
    return None if value is None else round(value, 3)


def parse_spec(spec: str) -> tuple[str, float, float, int | None]:
    """`compressed:F[@B]`, `prefix:F` or `anneal:F+A` -> (kind, F, A, batch or None)."""
    kind, _, rest = spec.partition(":")
    if kind not in ("compressed", "prefix", "anneal"):
        sys.exit(f"error: --specs: unknown fidelity {spec!r} (compressed:F[@B], prefix:F, anneal:F+A)")
    rest, _, batch = rest.partition("@")
    stop, _, branch = rest.partition("+")
    try:
        f, a, b = float(stop), float(branch or 0), int(batch) if batch else None
    except ValueError:
        sys.exit(f"error: --specs: {spec!r} is not KIND:F, compressed:F@B or anneal:F+A with numbers")
    if not 0 < f <= 1 or a < 0 or (kind == "anneal") != (a > 0) or (b is not None and (kind != "compressed" or b < 1)):
        sys.exit(
            f"error: --specs: {spec!r}: F in (0, 1], a branch A > 0 for anneal only, a batch @B for compressed only"
        )
    return kind, f, a, b


def summarise(spec: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """How one fidelity ranks the oracle's recipes: (oracle run, cheap run) pairs."""
    full_gain = [o["gain"] for o, _ in pairs]
    full_forg = [o["forgetting"] for o, _ in pairs]
    best = max((o["gain"] for o, _ in pairs if o["passes_gates"]), default=None)
    feasible = [(o, c) for o, c in pairs if c["passes_gates"]]
    pick = max(feasible, key=lambda oc: oc[1]["gain"], default=None)
    return {
        "spec": spec,
        "n": len(pairs),
        "compute_share": round(sum(c["tflop"] / o["tflop"] for o, c in pairs) / len(pairs), 4) if pairs else None,
        "spearman_gain": spearman([c["gain"] for _, c in pairs], full_gain),
        "spearman_forgetting": spearman([c["forgetting"] for _, c in pairs], full_forg),
        "gate_agreement": round(sum(o["passes_gates"] == c["passes_gates"] for o, c in pairs) / len(pairs), 3)
        if pairs
        else None,
        "says_pass": len(feasible),
        "pick": None
        if pick is None
        else {
            "label": pick[0]["label"],
            "cheap_gain": pick[1]["gain"],
            "full_gain": pick[0]["gain"],
            "passes_in_full": pick[0]["passes_gates"],
            "over_best_in_gate": round(pick[0]["gain"] / best, 3) if best else None,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycle", type=int, choices=(1, 2), default=1)
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--base", type=Path, default=None, help="the base model (cycle 2: the v1 `apply` made)")
    ap.add_argument("--oracle", type=Path, default=None)
    ap.add_argument("--specs", nargs="+", default=DEFAULT_SPECS)
    ap.add_argument("--limit", type=int, default=None, help="only the oracle's first N recipes")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fidelity_vs_oracle.json")
    args = ap.parse_args()
    specs = {s: parse_spec(s) for s in args.specs}
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from recipe_opt.recipe import Recipe
    from recipe_opt.study import FullFidelity, Measurement, release_checks
    from recipe_opt.train import Fidelity, ProxyTrainer

    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    oracle_path = args.oracle or REPO / "bench" / "results" / f"oracle_cycle{args.cycle}.json"
    oracle = json.loads(oracle_path.read_text())
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-fidelity-"))
    runner = runner_for(study_yaml(tmp, args.world, f"fidelity-{args.cycle}", cycle=args.cycle, base_model=args.base))
    sha = base_fingerprint(runner.cfg.base_model_path)
    if oracle.get("base_sha256") != sha:
        sys.exit(
            f"error: {oracle_path}: measured on a base with sha256 {str(oracle.get('base_sha256'))[:12]}, but "
            f"{runner.cfg.base_model_path} has {sha[:12]}: run bench/oracle.py --cycle {args.cycle} --restart first"
        )
    truth = [r for r in oracle["runs"].values() if r["seed"] == 0 and not r["label"].startswith(("llama", "litgpt"))]
    truth = truth[: args.limit] if args.limit else truth
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if data.get("base_sha256") not in (None, sha):
        data = {}  # another base's runs: measured afresh
    runs: dict[str, dict[str, Any]] = data.get("runs", {})
    ff = FullFidelity(runner)
    parent, evaluator, setup = ff.parent, ff.evaluator, runner.setup
    started = time.perf_counter()
    for spec, (kind, f, a, b) in specs.items():
        for i, o in enumerate(truth):
            key = f"{spec}:{o['recipe_hash']}"
            if key in runs:
                continue
            recipe = Recipe.from_dict(o["recipe"])
            steps = recipe.budget.steps
            full = setup.full_trainer(recipe)
            if kind == "compressed":
                from dataclasses import replace

                settings = replace(full.settings, fraction=f, min_steps=1, batch_size=b or full.settings.batch_size)
                trainer = ProxyTrainer(setup.base, full.data, settings)
                fid = None
            else:
                trainer = full
                fid = Fidelity(stop=max(1, round(f * steps)), horizon=steps, anneal=round(a * steps))
            t0 = time.perf_counter()
            with trainer.train(recipe, fidelity=fid) as (model, result):
                after = evaluator.evaluate(model)
            outcome = evaluator.outcome(parent, after)
            m = Measurement.of(outcome, parent, after, result, result.proxy_flops / 1e12, evaluator.new_suite.tasks)
            checks = release_checks(
                runner.cfg, m.values, m.forgetting_per_suite, runner.cfg.base_version, m.new_task_scores
            )
            runs[key] = {
                "spec": spec,
                "label": o["label"],
                "recipe_hash": o["recipe_hash"],
                "gain": m.values["gain"],
                "forgetting": m.values["forgetting"],
                "tflop": result.proxy_flops / 1e12,
                "steps": result.proxy_steps,
                "passes_gates": all(c.passed for c in checks),
                "failed": [c.gate for c in checks if not c.passed],
                "seconds": round(time.perf_counter() - t0, 2),
            }
            print(
                f"[{spec} {i + 1}/{len(truth)}] {o['label']}: gain {m.values['gain']:+.3f} (full {o['gain']:+.3f}) "
                f"forgetting {m.values['forgetting']:.3f} (full {o['forgetting']:.3f})",
                flush=True,
            )
            data.update({"base_sha256": sha, "runs": runs})
            _save(args.out, data)
    by_label = {o["recipe_hash"]: o for o in truth}
    summary = []
    for spec in specs:
        pairs = [
            (by_label[r["recipe_hash"]], r) for r in runs.values() if r["spec"] == spec and r["recipe_hash"] in by_label
        ]
        summary.append(summarise(spec, pairs))
    data.update(
        {
            "schema": 1,
            "command": " ".join(["python", "bench/fidelity_vs_oracle.py", *sys.argv[1:]]),
            "cycle": args.cycle,
            "oracle": str(oracle_path.relative_to(REPO)) if oracle_path.is_relative_to(REPO) else str(oracle_path),
            "base_sha256": sha,
            "machine": {"cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform()},
            "summary": summary,
            "seconds_this_run": round(time.perf_counter() - started),
            "runs": runs,
        }
    )
    _save(args.out, data)
    print(f"{'fidelity':<22} {'n':>4} {'compute':>8} {'rho gain':>9} {'rho forg':>9} {'gates':>6} {'pick/best':>10}")
    for s in summary:
        pick = s["pick"] or {}
        print(
            f"{s['spec']:<22} {s['n']:>4} {s['compute_share'] or 0:>8.3f} {s['spearman_gain'] or 0:>9.3f} "
            f"{s['spearman_forgetting'] or 0:>9.3f} {s['gate_agreement'] or 0:>6.2f} "
            f"{pick.get('over_best_in_gate') or 0:>8.2f}{'' if pick.get('passes_in_full', True) else ' (fails)'}"
        )


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
