"""Shared by the lineage benchmarks: demo-world study configs for any cycle, and full-fidelity runs.

Not a benchmark itself. Configs follow studies/demo*.yaml, with the native scorer (the same
metric as lm-eval, 7x cheaper) so the benchmarks fit a 2-core machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
STUDY_FILES = {1: "demo.yaml", 2: "demo-cycle-2.yaml", 3: "demo-cycle-3.yaml"}


def study_yaml(
    directory: Path,
    world: Path,
    name: str,
    *,
    cycle: int = 1,
    base_model: Path | None = None,
    seed: int = 0,
    trials: int = 20,
    sampler: dict[str, Any] | None = None,
    fraction: float | None = None,
    gates: dict[str, Any] | None = None,
    warm_start: list[str] | None = None,
    warm_recipes: int | None = None,
    models_dir: Path | None = None,
    space: Path | None = None,
) -> Path:
    """A config for the demo world's cycle `cycle`, writing into `directory` (its own SQLite).

    Paths are made absolute: the config lives in `directory`, not where the caller's paths are
    relative to. `warm_recipes` unset keeps the shipped study's `warm_start.max_recipes`.
    """
    cfg = yaml.safe_load((REPO / "studies" / STUDY_FILES[cycle]).read_text())
    world = world.resolve()
    base = base_model.resolve() if base_model else world / "models" / cfg["base_version"]
    warm = cfg.get("warm_start", {}).get("max_recipes", 8) if warm_recipes is None else warm_recipes
    cfg.update(
        {
            "name": name,
            "base_model": str(base),
            "data_root": str(world / "data"),
            "search_space": str(space.resolve() if space else REPO / "search_spaces" / "default.yaml"),
            "storage": f"sqlite:///{directory / 'bench.db'}",
            "output_dir": str(directory / name),
            "seed": seed,
            "trials": {"n_trials": trials},
            "warm_start": {"studies": warm_start or [], "max_recipes": warm},
        }
    )
    if sampler is not None:
        cfg["sampler"] = sampler
    if gates is not None:
        cfg["gates"] = gates
    if models_dir is not None:
        cfg["apply"] = {**cfg.get("apply", {}), "weights_dir": str(models_dir)}
    cfg["evaluation"]["backend"] = "native"
    cfg["evaluation"]["tasks_dir"] = str(REPO / "evaluators" / "demo")
    if fraction is not None:
        cfg["proxy"]["fraction"] = fraction
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def base_fingerprint(model_dir: Path) -> str:
    """The lineage's fingerprint of a model directory (sha256 over its config and weights).

    The demo world is bit-reproducible on one machine, not across CPUs: v0 pre-trained with one
    host's float kernels differs from another's (seen here: two sessions' v0 scored demo_mul 0.05
    and 0.00 before any update), so full-fidelity runs are comparable only on the same base.
    """
    from recipe_opt.study import weights_fingerprint

    return weights_fingerprint(model_dir)


def runner_for(cfg_path: Path) -> Any:
    from recipe_opt.config import load_study_config
    from recipe_opt.space import load_search_space
    from recipe_opt.study import StudyRunner

    cfg = load_study_config(cfg_path)
    space = load_search_space(cfg.search_space_path, list(cfg.sources.new))
    return StudyRunner(cfg, space)


def run_study(cfg_path: Path, *, warm: bool = False) -> tuple[Any, float]:
    """Run a study to its budget (warm-started from its config's `warm_start` if `warm`)."""
    from recipe_opt.study import WarmStartRequest

    runner = runner_for(cfg_path)
    start = time.perf_counter()
    study = runner.run(warm_start=WarmStartRequest.of(runner.cfg) if warm else None)
    return study, time.perf_counter() - start


def full_runs(cfg_path: Path, recipes: list[Any], *, progress: bool = True) -> list[dict[str, Any]]:
    """Each recipe at full fidelity (every step of its budget, every eval item) against the base."""
    from recipe_opt.study import run_full

    setup = runner_for(cfg_path).setup
    evaluator = setup.make_evaluator("native", None)
    parent = evaluator.evaluate(setup.base.model)

    out = []
    for recipe in recipes:
        start = time.perf_counter()
        full = run_full(setup, recipe, evaluator, parent)
        out.append(
            {
                **full.values,
                "forgetting_per_suite": full.forgetting_per_suite,
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        if progress:
            v = full.values
            print(
                f"  full {recipe.short_hash} seed {recipe.seed}: gain {v['gain']:+.3f} forgetting "
                f"{v['forgetting']:+.3f} cost {v['cost']:.3g} ({out[-1]['seconds']:.0f} s)",
                flush=True,
            )
    return out
