"""Benchmark: the search against the full-fidelity oracle (bench/oracle.py): the pick's regret,
the front's quality, and the search's price in full updates.

    python bench/search_vs_oracle.py [--seeds 5] [--arms default,random,tpe,cycle2:default,cycle2:cold]

Each arm runs the search as a user would, with the native scorer (lm-eval's metric at a seventh
of the cost):

* `default`: studies/demo.yaml as it is (GP after the informed design, 24 trials, proxies of a
  quarter of the steps, its gates and `gain-within-gates`), on the demo world's cycle-1 update;
* `random`, `tpe`: the same with random search / multivariate TPE and no informed design;
* `cycle2:default`: studies/demo-cycle-2.yaml as it is (16 trials, `warm_start: [auto]`) on the
  v1 that `recipe-opt apply studies/demo.yaml` made, in a copy of the demo's studies/demo.db, so
  the warm start finds the cycle-1 study as a user's would; `cycle2:cold`: the same, cold;
* `budget-0.25x`, `budget-1x`, `cycle2:budget-0.1x`: the shipped config with `trials.budget` (a
  budgeted search: compressed screens of 5% of the steps at batch 8, the informed design first, the
  finalist trained in full inside the search); the pick is the search's own, and its price counts
  what the search spent besides the pick's full run, which `apply` reuses.
* `budget-0.25x-tpe`, `budget-0.25x-random`: the 0.25x budget with multivariate TPE after the
  informed design, and with random screens;
* `botorch`: the default with BoTorch's qLogNEHVI (optuna-integration) after the informed design;
* `prescreen`: the default with the adapter-interpolation prescreen (`prescreen.enabled`);
* `cycle2:checked`: the cycle-2 warm start with its parent's trials as priors and a measured check
  (`warm_start.control: 2`), which falls back to the cold design if the warm recipes lose (the
  default since it won; `cycle2:plain` is the warm start before: no priors, no control).
* `mixed`, `budget-0.25x-mixed`, `cycle2:mixed`: the default, the 0.25x budget and cycle 2 cold
  with `sampler.initial_design: mixed` (the informed design's axes, every categorical choice
  spread over its points).

Each search runs `--trials` trials (40, for the front after 40); the pick is what the shipped
budget (its `n_trials`: 24 in cycle 1, 16 in cycle 2) would select from its first trials. Every
recipe the figures need at full fidelity (the picks, the front members after 5, 8, 10, 20 and 40
trials) is looked up in the oracle when the same recipe and seed is there, else trained exactly
as `apply` trains it and cached (resumable, keyed by the base model's fingerprint) in
bench/results/search_vs_oracle_runs.json. Per arm and seed:

* pick_relative: the pick's full-fidelity gain / the best full-fidelity gain among the oracle's
  recipes that pass the gates at full fidelity; pick_passes_gates_full: whether the pick does;
* full_hv_relative_by_trials: the hypervolume (gain up, forgetting and cost down; reference at
  gain 0, the forgetting bound, 1.1 x the oracle's largest cost) of the full-fidelity values of the
  feasible front after k trials, over the oracle's; only members that pass at full fidelity count;
* search_over_update: the search's proxy compute over the trials the pick is chosen from (pruned
  and failed included, plus re-runs) / the measured full-update compute of its pick.

Each oracle must have been measured on this machine's base model (its sha256 is checked); runs
of an arm against another oracle are dropped and searched again.

Writes bench/results/search_vs_oracle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml
from _cycles import REPO, STUDY_FILES, base_fingerprint, run_study, runner_for, study_yaml

# name -> (cycle, sampler override or None for the shipped config's, warm start from cycle 1,
# config overrides: a budgeted search's `trials.budget` and `multi_fidelity`)
ARMS: dict[str, tuple[int, dict[str, Any] | None, bool, dict[str, Any]]] = {
    "default": (1, None, False, {}),  # studies/demo.yaml as it is
    "random": (1, {"name": "random", "initial_design": "none"}, False, {}),
    "tpe": (1, {"name": "tpe", "n_startup_trials": 8, "initial_design": "none"}, False, {}),
    # Lever 4: BoTorch's qLogNEHVI (optuna-integration) after the same informed design as the default.
    "botorch": (1, {"name": "botorch", "n_startup_trials": 8}, False, {}),
    # Exploration: the informed design's axes with every categorical choice spread over its points.
    "mixed": (1, {"name": "gp", "n_startup_trials": 8, "initial_design": "mixed"}, False, {}),
    "budget-0.25x-mixed": (
        1,
        {"name": "gp", "n_startup_trials": 8, "initial_design": "mixed"},
        False,
        {"budget": "0.25x", "multi_fidelity": {"screen_batch_size": 8, "rungs": []}},
    ),
    "cycle2:mixed": (2, {"name": "gp", "n_startup_trials": 8, "initial_design": "mixed"}, False, {}),  # cold
    "cycle2:default": (2, None, True, {}),  # studies/demo-cycle-2.yaml as it is: warm start `auto`
    # The default warm start with fewer of the parent's recipes (the cold design gets the slots back).
    "cycle2:warm4": (
        2,
        None,
        True,
        {"warm_start": {"studies": ["auto"], "max_recipes": 4, "control": 2, "priors": True}},
    ),
    # The warm start before the check became the default: recipes enqueued, no priors, no control.
    "cycle2:plain": (
        2,
        None,
        True,
        {"warm_start": {"studies": ["auto"], "max_recipes": 8, "control": 0, "priors": False}},
    ),
    "cycle2:cold": (2, None, False, {}),  # the same with `--warm-start none`
    # Lever 5: the warm start with its parent's trials as priors and a measured check (two
    # informed-design recipes as a control; the cold design and no priors if the warm ones lose).
    "cycle2:checked": (
        2,
        None,
        True,
        {"warm_start": {"studies": ["auto"], "max_recipes": 8, "control": 2, "priors": True}},
    ),
    # Budgeted searches (`trials.budget`): compressed screens at a quarter of the proxy's batch, the
    # finalist trained in full inside the search (apply reuses it). The pick is the search's own.
    "budget-0.25x": (1, None, False, {"budget": "0.25x", "multi_fidelity": {"screen_batch_size": 8, "rungs": []}}),
    "budget-1x": (1, None, False, {"budget": "1x", "multi_fidelity": {"screen_batch_size": 8, "rungs": []}}),
    # Lever 3: the shipped config with the adapter-interpolation prescreen queuing its best 3.
    "prescreen": (1, None, False, {"prescreen": {"enabled": True}}),
    # The same budget with another sampler after the informed design (lever 4 on a budget).
    "budget-0.25x-tpe": (
        1,
        {"name": "tpe", "n_startup_trials": 8},
        False,
        {"budget": "0.25x", "multi_fidelity": {"screen_batch_size": 8, "rungs": []}},
    ),
    "budget-0.25x-random": (
        1,
        {"name": "random", "initial_design": "none"},
        False,
        {"budget": "0.25x", "multi_fidelity": {"screen_batch_size": 8, "rungs": []}},
    ),
    "cycle2:budget-0.1x": (
        2,
        None,
        True,
        {"budget": "0.1x", "multi_fidelity": {"screen_batch_size": 8, "rungs": [], "min_screens": 2}},
    ),
}
CHECKPOINTS = (5, 8, 10, 20, 40)  # 8: the "HV after 8 >= random's after 40"


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
    """An in-memory copy of `study` holding its first `k` trials of this cycle (its prior
    observations beside them, and its attributes)."""
    import optuna

    copy = optuna.create_study(directions=study.directions)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    copy.set_user_attr("selection", None)
    from recipe_opt.study import is_prior

    finished = [t for t in study.trials if t.state.is_finished()]
    # Prior observations (a warm start's `priors`) are not this cycle's trials: kept, not counted.
    for t in [t for t in finished if is_prior(t)] + [t for t in finished if not is_prior(t)][:k]:
        copy.add_trial(t)
    return copy


class FullRuns:
    """Full-fidelity results by recipe hash and seed: the oracle's, then this benchmark's own."""

    def __init__(
        self, oracle: dict[str, Any], cache_path: Path, cache: dict[str, Any], runner: Any, base_sha: str
    ) -> None:
        self.oracle = oracle.get("runs", {})
        self.base = base_sha[:16]  # the cache holds runs of several bases (cycles, machines)
        self.cache_path = cache_path
        self.cache = cache  # shared by every cycle's FullRuns: each writes the whole file
        self.runner = runner
        self._fidelity: Any = None
        self.looked_up = self.trained = 0

    def get(self, recipe: Any) -> dict[str, Any]:
        from recipe_opt._files import write_atomic

        key = f"{recipe.content_hash}:{recipe.seed}"
        if key in self.oracle:
            self.looked_up += 1
            return dict(self.oracle[key])
        key = f"{self.base}:{key}"
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


class Cycle:
    """One cycle's truth (its oracle) and what its arms share: the lookup runner, the pick budget."""

    def __init__(self, cycle: int, args: argparse.Namespace, tmp: Path, cache: dict[str, Any]) -> None:
        self.cycle = cycle
        self.oracle_path = args.oracle if cycle == 1 else args.oracle2
        if not self.oracle_path.is_file():
            sys.exit(
                f"error: {self.oracle_path}: not found; run `python bench/oracle.py --cycle {cycle}"
                + (" --base demo_world/models/v1`" if cycle == 2 else "`")
                + " first, or leave this cycle's arms out of --arms"
            )
        self.oracle = json.loads(self.oracle_path.read_text())
        if not self.oracle.get("complete"):
            print(f"note: {self.oracle_path} is not complete; figures are against what it holds", file=sys.stderr)
        self.dir = tmp / f"cycle{cycle}"
        self.dir.mkdir()
        self.base_model = None
        if cycle == 2:
            # Cycle 2 as a user runs it: on the v1 `recipe-opt apply studies/demo.yaml` made, in the
            # family's database (its cycle-1 study and lineage), so `warm_start: [auto]` finds cycle 1.
            if not args.family_db.is_file():
                sys.exit(f"error: {args.family_db}: not found; run the README demo (search, then apply) first")
            shutil.copy(args.family_db, self.dir / "bench.db")
            self.base_model = args.world / "models" / "v1"
        lookup = study_yaml(self.dir, args.world, "lookup", cycle=cycle, base_model=self.base_model, space=args.space)
        self.runner = runner_for(lookup)
        self.cfg = self.runner.cfg
        base_sha = base_fingerprint(self.cfg.base_model_path)
        if self.oracle.get("base_sha256") != base_sha:
            sys.exit(
                f"error: {self.oracle_path} was measured on a base model with sha256 "
                f"{str(self.oracle.get('base_sha256'))[:12]}, but {self.cfg.base_model_path} has {base_sha[:12]}; "
                f"rerun `python bench/oracle.py --cycle {cycle} --restart` on this machine's demo world"
            )
        shipped = yaml.safe_load((REPO / "studies" / STUDY_FILES[cycle]).read_text())
        self.budget = int(shipped["trials"]["n_trials"])  # what the pick is chosen from
        self.full = FullRuns(self.oracle, args.cache, cache, self.runner, base_sha)
        # The oracle's truth: which recipes pass at full fidelity, the best in-gate gain, its hypervolume.
        self.first_seed = [r for r in self.oracle["runs"].values() if "noise_of" not in r]
        self.passing = [r for r in self.first_seed if r["passes_gates"]]
        self.best = max((r["gain"] for r in self.passing), default=float("nan"))
        self.ref = (0.0, float(self.cfg.gates.max_forgetting or 1.0), 1.1 * max(r["cost"] for r in self.first_seed))
        self.hv = hypervolume(self.passing, self.ref)

    def summary(self) -> dict[str, Any]:
        noise = self.oracle.get("noise", {})
        path = self.oracle_path
        return {
            "file": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
            "complete": bool(self.oracle.get("complete")),
            "base_sha256": self.oracle.get("base_sha256"),
            "n_recipes": len(self.first_seed),
            "n_passing_gates": len(self.passing),
            "best_in_gate_gain": self.best,
            "hypervolume": self.hv,
            "hv_reference": {"gain": self.ref[0], "forgetting": self.ref[1], "cost": self.ref[2]},
            "noise": {
                "n_recipes": noise.get("n_recipes"),
                "gain_sd": noise.get("gain_sd"),
                "forgetting_sd": noise.get("forgetting_sd"),
            },
            "pick_budget": self.budget,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--oracle", type=Path, default=REPO / "bench" / "results" / "oracle_cycle1.json")
    ap.add_argument("--oracle2", type=Path, default=REPO / "bench" / "results" / "oracle_cycle2.json")
    ap.add_argument(
        "--family-db", type=Path, default=REPO / "studies" / "demo.db", help="cycle 2: the demo's study database"
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="start at this seed (split seeds over processes)")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--trials", type=int, default=max(CHECKPOINTS))
    ap.add_argument("--space", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search_vs_oracle.json")
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "results" / "search_vs_oracle_runs.json")
    args = ap.parse_args()
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        ap.error(f"--arms: unknown {', '.join(unknown)} (known: {', '.join(ARMS)})")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from recipe_opt.exceptions import StudyError
    from recipe_opt.study import StudyRecord, is_prior, search_price, select_recipe

    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-vs-oracle-"))
    cache: dict[str, Any] = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    cycles = {c: Cycle(c, args, tmp, cache) for c in sorted({ARMS[a][0] for a in arms})}

    # Resumable: each (arm, seed) is written as it finishes and skipped when run again.
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    done_runs: dict[str, Any] = previous.get("by_run", {})
    oracles: dict[str, Any] = previous.get("oracles", {})
    for c, cy in cycles.items():
        if oracles.get(str(c), {}).get("base_sha256") != cy.oracle.get("base_sha256"):
            # Runs against another oracle (another machine's demo world) do not mix with these.
            done_runs = {k: v for k, v in done_runs.items() if ARMS[v["arm"]][0] != c}
        oracles[str(c)] = cy.summary()
    started = time.perf_counter()

    def write(out: dict[str, Any]) -> None:
        from recipe_opt._files import write_atomic

        write_atomic(args.out, json.dumps(out, indent=2) + "\n")

    for arm in arms:
        cycle, sampler, warm, overrides = ARMS[arm]
        cy = cycles[cycle]
        for seed in range(args.first_seed, args.seeds):
            name = f"{arm}-s{seed}"
            if name in done_runs:
                continue
            path = study_yaml(
                cy.dir,
                args.world,
                name.replace(":", "-"),
                cycle=cycle,
                base_model=cy.base_model,
                seed=seed,
                trials=args.trials,
                sampler=sampler,
                space=args.space,
                warm_start=["auto"] if warm else None,
            )
            budgeted = "budget" in overrides
            if overrides:
                changed = yaml.safe_load(path.read_text())
                for key, value in overrides.items():
                    if key == "budget":
                        changed["trials"]["budget"] = value
                    else:  # a whole section: multi_fidelity, prescreen
                        changed[key] = value
                path.write_text(yaml.safe_dump(changed))
            what = f"budget {overrides['budget']}" if budgeted else f"{args.trials} trials"
            print(f"{name}: searching ({what}{', warm start' if warm else ''})", flush=True)
            study, seconds = run_study(path, warm=warm)
            # A fixed-trial arm's pick is what its shipped budget of trials selects; a budgeted
            # arm's is its own: the finalist it trained in full.
            pick_study = study if budgeted else prefix_study(study, cy.budget)
            try:
                selected = select_recipe(pick_study, cy.cfg)
            except StudyError as exc:
                # Nothing passes the gates. A budgeted search's finalist failed them in its full
                # run: it is what the search ends with, a pick that does not pass (a miss).
                finalists = [t for t in StudyRecord.read(study).complete if t.full_run]
                if not budgeted or not finalists:
                    raise
                print(f"{name}: {exc}; its finalist {finalists[-1].number} is scored as the pick", flush=True)
                selected = SimpleNamespace(
                    trial_number=finalists[-1].number, recipe=finalists[-1].recipe, values=finalists[-1].values
                )
            pick = cy.full.get(selected.recipe)
            price = search_price(
                StudyRecord.read(pick_study),
                selection={"trial_number": selected.trial_number},
                measured_update_tflop=pick["cost"],
            )
            hv: dict[str, float | None] = {}
            for k in CHECKPOINTS:
                front = StudyRecord.read(prefix_study(study, k), gates=cy.cfg.gates).front
                members = [cy.full.get(t.recipe) for t in front if t.recipe is not None]
                value = hypervolume([m for m in members if m["passes_gates"]], cy.ref)
                own = [t for t in study.trials if t.state.is_finished() and not is_prior(t)]
                hv[str(k)] = value / cy.hv if cy.hv and len(own) >= k else None
            done_runs[name] = {
                "arm": arm,
                "seed": seed,
                "pick_relative": pick["gain"] / cy.best,
                "pick_passes_gates_full": bool(pick["passes_gates"]),
                "search_over_update": price.ratio,
                "full_hv_relative": hv,
                "trial": selected.trial_number,
                "recipe": selected.recipe.summary(),
                "proxy": selected.values,
                "full": {k: pick[k] for k in ("gain", "forgetting", "cost")},
                "search_tflop": price.search_tflop,
                "reused_tflop": price.reused_tflop,
                "trials_run": len([t for t in study.trials if not is_prior(t)]),
                "search_seconds": round(seconds),
                "pick_full_seconds": round(float(pick["seconds"]), 1),
            }
            write({**previous, "oracles": oracles, "by_run": done_runs})
            print(
                f"{name}: pick trial {selected.trial_number} full gain {pick['gain']:+.3f} "
                f"({pick['gain'] / cy.best:.2f} of the best in-gate), "
                f"gates {'pass' if pick['passes_gates'] else 'FAIL'}, "
                f"price {price.ratio:.2f} updates",
                flush=True,
            )
    arms_out: dict[str, Any] = {}
    for arm in ARMS:
        runs = sorted((r for r in done_runs.values() if r["arm"] == arm), key=lambda r: r["seed"])
        if not runs:
            continue
        rows: dict[str, Any] = {
            "pick_relative": [r["pick_relative"] for r in runs],
            "pick_passes_gates_full": [r["pick_passes_gates_full"] for r in runs],
            "search_over_update": [r["search_over_update"] for r in runs],
            "full_hv_relative_by_trials": {
                str(k): [r["full_hv_relative"].get(str(k)) for r in runs] for k in CHECKPOINTS
            },
            "search_seconds": [r["search_seconds"] for r in runs],
            "pick_full_seconds": [r.get("pick_full_seconds") for r in runs],
        }
        rows["median"] = {
            "pick_relative": statistics.median(rows["pick_relative"]),
            "pick_passes_gates_full": statistics.fmean(rows["pick_passes_gates_full"]),
            "search_over_update": statistics.median(rows["search_over_update"]),
            "full_hv_relative_by_trials": {
                k: statistics.median(v) for k, v in rows["full_hv_relative_by_trials"].items() if v and None not in v
            },
        }
        arms_out[arm] = rows
    out = {
        "command": "python bench/search_vs_oracle.py",
        "machine": {"cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform()},
        "oracle": oracles.get("1", {}),
        "oracles": oracles,
        "setup": {
            "studies": "studies/demo.yaml (cycle 1) and studies/demo-cycle-2.yaml (cycle 2), native scorer",
            "trials": args.trials,
            "seeds": list(range(args.seeds)),
            "arms": {a: {"cycle": ARMS[a][0], "sampler": ARMS[a][1] or "the shipped config's", "warm": ARMS[a][2],
                         **ARMS[a][3]} for a in arms_out},
        },
        "full_runs": {
            "looked_up_in_oracle": sum(cy.full.looked_up for cy in cycles.values()),
            "trained": sum(cy.full.trained for cy in cycles.values()),
        },
        "arms": arms_out,
        "by_run": done_runs,
        "seconds_this_run": round(time.perf_counter() - started),
    }  # fmt: skip
    write(out)
    print("\n".join(markdown_table(arms_out)))


def markdown_table(arms_out: dict[str, Any]) -> list[str]:
    """The README's table: medians over seeds, with the range, per arm."""

    def spread(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})"

    lines = [
        "| arm | seeds | pick / best in-gate | pick passes gates (full) | search / update | "
        + " | ".join(f"full HV after {k}" for k in CHECKPOINTS)
        + " | search s | pick full run s |",
        "|---" * (7 + len(CHECKPOINTS)) + "|",
    ]
    for arm, rows in arms_out.items():
        hv = rows["full_hv_relative_by_trials"]
        cells = [
            f"`{arm}`",
            str(len(rows["pick_relative"])),
            spread(rows["pick_relative"], ".2f"),
            f"{sum(rows['pick_passes_gates_full'])} of {len(rows['pick_passes_gates_full'])}",
            spread(rows["search_over_update"], ".2f"),
            *(f"{statistics.median(hv[str(k)]):.2f}" if hv[str(k)] and None not in hv[str(k)] else "-"
              for k in CHECKPOINTS),
            f"{statistics.median(rows['search_seconds']):.0f}",
            f"{statistics.median([x for x in rows['pick_full_seconds'] if x is not None] or [0]):.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
