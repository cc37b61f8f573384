"""A study and a lineage a release reviewer reads, built by hand (no training): the pick is the
most expensive recipe on the front, a cheaper one sits within noise of it, one trial fails the
forgetting gate, and a new task (`demo_diff`, 22 items) falls 0.227 -> 0.091 while its suite
improves. Shared by the report's unit tests and its browser tests."""

from __future__ import annotations

from typing import Any

import optuna

from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule

# Items per task (the eval's sample sizes) and the base model's scores.
ITEMS = {"demo_mul": 100, "demo_diff": 22, "demo_add": 100, "demo_lookup": 40}
BASE = {"demo_mul": 0.0, "demo_diff": 0.227, "demo_add": 1.0, "demo_lookup": 1.0}
CONFIG = {
    "family": "fam",
    "base_version": "v0",
    "evaluation": {
        "new_task": {"name": "new_skills", "tasks": ["demo_mul", "demo_diff"]},
        "retention": [
            {"name": "arithmetic", "tasks": ["demo_add"], "weight": 1.0},
            {"name": "knowledge", "tasks": ["demo_lookup"], "weight": 1.0},
        ],
    },
    # No per-task drop bound: the suite's gain passes while demo_diff falls, so only the flag
    # can tell a reviewer.
    "gates": {"max_forgetting": 0.05, "min_gain": 0.1, "max_new_task_drop": None},
    "noise": {"gain": 0.05, "forgetting": 0.01, "source": "the oracle's noise floor"},
}


def tasks(scores: dict[str, float]) -> dict[str, dict[str, float]]:
    return {t: {"acc": v, "n": float(ITEMS[t])} for t, v in scores.items()}


def recipe(replay: float, steps: int, rank: int, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"mul": 0.6, "diff": 0.4}),
        Replay(replay),
        Schedule(2e-4, 0.05, "cosine"),
        Adapter(rank, 2.0, targets),
        Budget(steps, 8),
    )


# (recipe, after-update task scores, cost): trial 0 forgets, 1 is the cheaper neighbour, 2 the
# pick (the most expensive point on the front), 3 dominated.
TRIALS: list[tuple[Recipe, dict[str, float], float]] = [
    (recipe(0.0, 600, 32), {"demo_mul": 1.0, "demo_diff": 0.227, "demo_add": 0.4, "demo_lookup": 1.0}, 0.61),
    (recipe(0.3, 500, 16), {"demo_mul": 0.98, "demo_diff": 0.091, "demo_add": 1.0, "demo_lookup": 0.975}, 0.442),
    (recipe(0.15, 600, 16), {"demo_mul": 1.0, "demo_diff": 0.091, "demo_add": 1.0, "demo_lookup": 0.975}, 0.537),
    (
        recipe(0.3, 550, 8, ("q_proj",)),
        {"demo_mul": 0.6, "demo_diff": 0.227, "demo_add": 1.0, "demo_lookup": 0.95},
        0.5,
    ),
]
PICK = 2


def values(after: dict[str, float]) -> tuple[float, float, dict[str, float]]:
    """(gain, forgetting, forgetting per suite) of one run, as the evaluator computes them."""
    gain = (after["demo_mul"] + after["demo_diff"]) / 2 - (BASE["demo_mul"] + BASE["demo_diff"]) / 2
    per_suite = {
        "arithmetic": BASE["demo_add"] - after["demo_add"],
        "knowledge": BASE["demo_lookup"] - after["demo_lookup"],
    }
    return gain, sum(per_suite.values()) / 2, per_suite


def reviewer_study(storage: str | None = None, name: str = "cycle-1") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("config", CONFIG)
    study.set_user_attr("base_evaluation", {"tasks": tasks(BASE), "suites": {}})
    for r, after, cost in TRIALS:
        gain, forgetting, per_suite = values(after)
        metrics: dict[str, Any] = {
            "gain": gain,
            "forgetting": forgetting,
            "cost": cost,
            "forgetting_per_suite": per_suite,
            "tasks_after": tasks(after),
        }
        study.add_trial(
            optuna.trial.create_trial(
                values=[gain, forgetting, cost],
                user_attrs={"recipe": r.to_dict(), "summary": r.summary(), "metrics": metrics},
            )
        )
    study.set_user_attr(
        "selection",
        {
            "trial_number": PICK,
            "policy": "gain-within-gates",
            "rule": "the feasible Pareto trial with the highest gain",
            "reason": f"under `gain-within-gates` trial {PICK} ranks first; add a *safety* suite",
            "recipe_hash": TRIALS[PICK][0].content_hash,
        },
    )
    return study


def record_release(url: str, study_name: str = "cycle-1") -> None:
    """v0 -> v1 through `study_name`: v1 is the pick trained in full, with demo_diff 0.227 -> 0.091."""
    from recipe_opt.lineage import LineageStore, SuiteScore

    r, after, cost = TRIALS[PICK]
    gain, forgetting, per_suite = values(after)
    full = {"gain": gain, "forgetting": forgetting, "cost": cost, "forgetting_per_suite": per_suite}

    def scores(t: dict[str, float]) -> list[SuiteScore]:
        return [
            SuiteScore(
                "new_skills",
                "new",
                (t["demo_mul"] + t["demo_diff"]) / 2,
                tasks({k: t[k] for k in ("demo_mul", "demo_diff")}),
                "native",
                None,
            ),
            SuiteScore("arithmetic", "retention", t["demo_add"], tasks({"demo_add": t["demo_add"]}), "native", None),
            SuiteScore(
                "knowledge", "retention", t["demo_lookup"], tasks({"demo_lookup": t["demo_lookup"]}), "native", None
            ),
        ]

    with LineageStore(url) as store:
        v0 = store.ensure_version("fam", "v0", weights_uri="/m/v0")
        store.ensure_cycle(
            study_name, base_version_id=v0, optuna_study_id=1, objectives={}, data_manifest={}, search_space={}
        )
        store.record_apply(
            study_name=study_name,
            name="v1",
            weights_uri="/m/v1",
            weights_checksum="c" * 64,
            tier=None,
            recipe=r,
            trial_number=PICK,
            released=True,
            checks=[
                {
                    "gate": "min_gain",
                    "measured": gain,
                    "bound": 0.1,
                    "passed": True,
                    "note": f"new-task gain {gain:+.3f}",
                }
            ],
            reasons=["every release gate passes"],
            metrics={"full": {**full, "tasks_after": tasks(after)}},
            parent_scores=scores(BASE),
            scores=scores(after),
            proxy=full,
            full=full,
        )
