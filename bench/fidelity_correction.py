"""Benchmark: does a correction learned from proxy-vs-full pairs make a cheap run predict the full one?

    python bench/fidelity_correction.py [--specs compressed:0.05@8 compressed:0.25] [--test-cycle 2]

Lever 1 of the cheap-search issue, measured offline on runs already made: `bench/fidelity_vs_oracle.py`
ran the oracle's recipes at cheap fidelities, `bench/oracle.py` at full. A cheap run errs in a
direction that depends on the recipe (a compressed schedule under-trains short and low-LR recipes,
and mid-run forgetting is partly recovered by a decayed schedule's end), so a model of the full
run's value from the cheap run's value *and the recipe* may rank better than the cheap value alone.

The model is ridge regression (standardised features, penalty `--ridge`) of the full gain, and of
log(0.01 + full forgetting), on: the cheap run's gain and log(0.01 + its forgetting); the recipe's
log LR, steps / 1000, replay share, warmup share, log rank, log alpha ratio, all-linear targets,
the schedule's shape (one-hot); and the cheap gain x log LR and x steps. The mixture is left out:
its sources change from cycle to cycle. Two measurements:

* within a cycle, leave-one-out: each recipe predicted by a model fitted on all the others;
* across cycles (where `bench/results/fidelity_vs_oracle_cycle<N>.json` exists): fitted on every
  cycle-1 recipe, applied to cycle N's (another base, other new tasks): what a lineage that
  learned the correction in one cycle would get in the next.

Each is judged as `fidelity_vs_oracle.py` judges a fidelity: Spearman rho against the full runs,
and the pick (best predicted gain among recipes predicted under the forgetting gate) as a share of
the best in-gate full gain. Writes bench/results/fidelity_correction.json. Runs in seconds: no
training.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _cycles import REPO

SHAPES = ("linear", "constant_with_warmup")  # one-hot against cosine


def recipe_features(recipe: dict[str, Any]) -> list[float]:
    s, a = recipe["schedule"], recipe["adapter"]
    return [
        math.log(s["peak_lr"]),
        recipe["budget"]["steps"] / 1000,
        recipe["replay"]["ratio"],
        s["warmup_fraction"],
        math.log(a["rank"]),
        math.log(a["alpha_ratio"]),
        float(len(a["target_modules"]) > 4),  # all linear layers (7 on the demo's Llama) vs attention (4)
        *(float(s["shape"] == shape) for shape in SHAPES),
    ]


def log_forgetting(f: float) -> float:
    # Forgetting is 0 for most good recipes and up to 0.8 for bad ones: the log spreads the small
    # values the gate (0.05) cares about; 0.01 is about one eval item on the demo's suites.
    return math.log(0.01 + max(f, 0.0))


def load(fid_path: Path, oracle_path: Path, spec: str) -> list[dict[str, Any]]:
    """(cheap run, full run) pairs of one cycle: each oracle recipe (seed 0) with its cheap run."""
    fid, oracle = json.loads(fid_path.read_text()), json.loads(oracle_path.read_text())
    if fid.get("base_sha256") != oracle.get("base_sha256"):
        sys.exit(f"error: {fid_path} and {oracle_path} were measured on different bases")
    full = {r["recipe_hash"]: r for r in oracle["runs"].values() if r["seed"] == 0}
    pairs = [
        {"cheap": r, "full": full[r["recipe_hash"]]}
        for r in fid["runs"].values()
        if r["spec"] == spec and r["recipe_hash"] in full
    ]
    if len(pairs) < 10:
        sys.exit(f"error: {fid_path}: only {len(pairs)} runs at {spec!r} with an oracle run (need 10)")
    return sorted(pairs, key=lambda p: p["full"]["label"])


def design(pairs: list[dict[str, Any]]) -> np.ndarray:
    rows = []
    for p in pairs:
        x = recipe_features(p["full"]["recipe"])
        g, f = p["cheap"]["gain"], log_forgetting(p["cheap"]["forgetting"])
        rows.append([g, f, *x, g * x[0], g * x[1]])
    return np.asarray(rows)


class Ridge:
    def __init__(self, x: np.ndarray, y: np.ndarray, penalty: float) -> None:
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-9
        z = np.c_[np.ones(len(x)), (x - self.mu) / self.sd]
        reg = penalty * np.diag([0.0] + [1.0] * x.shape[1])  # the intercept is not penalised
        self.coef = np.linalg.solve(z.T @ z + reg, z.T @ y)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.c_[np.ones(len(x)), (x - self.mu) / self.sd] @ self.coef
        return out


def judge(pairs: list[dict[str, Any]], gain: list[float], forgetting: list[float], bound: float) -> dict[str, Any]:
    from recipe_opt.study import spearman

    full_gain = [p["full"]["gain"] for p in pairs]
    full_forg = [p["full"]["forgetting"] for p in pairs]
    best = max((p["full"]["gain"] for p in pairs if p["full"]["passes_gates"]), default=None)
    feasible = [i for i in range(len(pairs)) if forgetting[i] <= bound]
    pick = max(feasible, key=lambda i: gain[i], default=None)

    def r(a: list[float], b: list[float]) -> float | None:
        v = spearman(a, b)
        return None if v is None else round(v, 3)

    return {
        "n": len(pairs),
        "spearman_gain": r(gain, full_gain),
        "spearman_forgetting": r(forgetting, full_forg),
        "pick": None
        if pick is None
        else {
            "label": pairs[pick]["full"]["label"],
            "full_gain": pairs[pick]["full"]["gain"],
            "passes_in_full": pairs[pick]["full"]["passes_gates"],
            "over_best_in_gate": round(pairs[pick]["full"]["gain"] / best, 3) if best else None,
        },
    }


def corrected(
    train: list[dict[str, Any]], test: list[dict[str, Any]], penalty: float
) -> tuple[list[float], list[float]]:
    xt, xs = design(train), design(test)
    g = Ridge(xt, np.array([p["full"]["gain"] for p in train]), penalty)(xs)
    lf = Ridge(xt, np.array([log_forgetting(p["full"]["forgetting"]) for p in train]), penalty)(xs)
    return [float(v) for v in g], [float(math.exp(v) - 0.01) for v in lf]


def measure(spec: str, penalties: list[float], test_cycle: int, bound: float) -> dict[str, Any]:
    """One cheap fidelity: raw and corrected, within cycle 1 (leave-one-out) and across cycles."""
    results = REPO / "bench" / "results"
    train = load(results / "fidelity_vs_oracle.json", results / "oracle_cycle1.json", spec)
    raw = judge(train, [p["cheap"]["gain"] for p in train], [p["cheap"]["forgetting"] for p in train], bound)
    out: dict[str, Any] = {"cycle1": {"raw": raw, "leave_one_out": {}}}

    def line(label: str, j: dict[str, Any]) -> str:
        pick = j["pick"] and j["pick"]["over_best_in_gate"]
        return f"  {label}: rho gain {j['spearman_gain']}, forgetting {j['spearman_forgetting']}, pick {pick}"

    print(f"{spec}, cycle 1 ({len(train)} recipes)\n" + line("raw", raw))
    for penalty in penalties:
        gain, forg = [0.0] * len(train), [0.0] * len(train)
        for i in range(len(train)):
            g, f = corrected(train[:i] + train[i + 1 :], [train[i]], penalty)
            gain[i], forg[i] = g[0], f[0]
        j = judge(train, gain, forg, bound)
        out["cycle1"]["leave_one_out"][str(penalty)] = j
        print(line(f"leave-one-out, ridge {penalty:g}", j))
    test_path = results / f"fidelity_vs_oracle_cycle{test_cycle}.json"
    if not test_path.is_file():
        print(
            f"  ({test_path} not there: no cross-cycle figures; "
            f"bench/fidelity_vs_oracle.py --cycle {test_cycle} makes it)"
        )
        return out
    test = load(test_path, results / f"oracle_cycle{test_cycle}.json", spec)
    raw2 = judge(test, [p["cheap"]["gain"] for p in test], [p["cheap"]["forgetting"] for p in test], bound)
    key = f"cycle{test_cycle}"
    out[key] = {"raw": raw2, "fitted_on_cycle1": {}}
    print(f"{spec}, cycle {test_cycle} ({len(test)} recipes)\n" + line("raw", raw2))
    for penalty in penalties:
        j = judge(test, *corrected(train, test, penalty), bound)
        out[key]["fitted_on_cycle1"][str(penalty)] = j
        print(line(f"fitted on cycle 1, ridge {penalty:g}", j))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--specs",
        nargs="+",
        default=["compressed:0.05@8", "compressed:0.25"],
        help="the cheap fidelities (as fidelity_vs_oracle names them)",
    )
    ap.add_argument("--ridge", type=float, nargs="+", default=[1.0, 5.0, 20.0], help="ridge penalties to report")
    ap.add_argument("--test-cycle", type=int, default=2)
    ap.add_argument("--bound", type=float, default=0.05, help="the forgetting gate the pick is judged under")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fidelity_correction.json")
    args = ap.parse_args()
    out: dict[str, Any] = {
        "command": " ".join(["python bench/fidelity_correction.py", *sys.argv[1:]]),
        "features": "cheap gain, log(0.01 + cheap forgetting), log LR, steps/1000, replay, warmup, log rank, "
        "log alpha ratio, all-linear, schedule one-hot, cheap gain x log LR, cheap gain x steps",
        "specs": {spec: measure(spec, args.ridge, args.test_cycle, args.bound) for spec in args.specs},
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
