"""The names under which a trial and a study keep their records in Optuna's storage."""

from __future__ import annotations

from typing import Any

import optuna

__all__ = [
    "ATTR_BASE_CHECKSUM",
    "ATTR_BASE_EVAL",
    "ATTR_BUDGET",
    "ATTR_CONFIG",
    "ATTR_DATA",
    "ATTR_FAILURE",
    "ATTR_FAILURE_KIND",
    "ATTR_FIDELITY",
    "ATTR_FINGERPRINT",
    "ATTR_LADDER",
    "ATTR_METRICS",
    "ATTR_OBJECTIVES",
    "ATTR_ORIGIN",
    "ATTR_PRESCREEN",
    "ATTR_PROXY_TFLOPS",
    "ATTR_RECIPE",
    "ATTR_RECIPE_HASH",
    "ATTR_RUNGS",
    "ATTR_SEED_ROLE",
    "ATTR_SELECTION",
    "ATTR_SPACE",
    "ATTR_SUMMARY",
    "ATTR_WARM_CHECK",
    "ATTR_WORKER",
    "FAILURE_KINDS",
    "PRIOR",
    "is_prior",
    "set_failure",
]

ATTR_RECIPE = "recipe"
ATTR_RECIPE_HASH = "recipe_hash"
ATTR_SUMMARY = "summary"  # the recipe in one line, for tables
ATTR_METRICS = "metrics"
# Why a trial failed or was pruned, in words ("diverged: loss became nan at step 1"), and what
# kind of ending it was, on its own (FAILURE_KINDS): tables and counts read the kind.
ATTR_FAILURE = "failure"
ATTR_FAILURE_KIND = "failure_kind"
FAILURE_KINDS = ("diverged", "stopped early", "error", "interrupted", "storage error", "orphaned", "worker lost")
ATTR_BASE_EVAL = "base_evaluation"
ATTR_BASE_CHECKSUM = "base_checksum"
ATTR_FINGERPRINT = "fingerprint"
ATTR_RUNGS = "rung_values"
ATTR_PROXY_TFLOPS = "proxy_tflops"
# Where an enqueued or added trial came from ("informed initial design", "warm start: ...",
# "prior: ..."). Prior observations carry values measured in another cycle: they inform the
# sampler but never count towards the budget and are never selected.
ATTR_ORIGIN = "origin"
PRIOR = "prior"
# Study attribute: the number of finished trials the study is to reach. `prepare` and `search`
# set it; workers read it, so every worker of a study stops at the same budget.
ATTR_BUDGET = "budget"
# Trial attribute: which worker ran the trial (id, host, pid, the GPUs it saw).
ATTR_WORKER = "worker"
# Study attributes: the config it was created with (its JSON dump), the objectives it optimises,
# the search space as resolved against the model, the selected recipe, the data read per source.
ATTR_CONFIG = "config"
# Trial attribute of a budgeted (multi-fidelity) search: the rung it ran at, what it trained
# (kind, share of the full steps), the trial it continued and where its state was saved.
ATTR_FIDELITY = "fidelity"
# Study attribute of a budgeted search: the plan and how the budget was spent.
ATTR_LADDER = "ladder"
# Trial attribute of a warm start's seeds (`warm_start.control`): "warm" or "control".
ATTR_SEED_ROLE = "seed_role"
# Study attribute of a checked warm start: pending ({"budget"}), then the decision (`WarmCheck`).
ATTR_WARM_CHECK = "warm_check"
# Study attribute of a prescreened search: the probes, their compute and the top simulated candidates.
ATTR_PRESCREEN = "prescreen"
ATTR_OBJECTIVES = "objectives"
ATTR_SPACE = "space"
ATTR_SELECTION = "selection"
ATTR_DATA = "data"


def set_failure(trial: Any, kind: str, reason: str) -> None:
    """Record why `trial` (anything with `set_user_attr`) ended: the words, and apart, the kind."""
    if kind not in FAILURE_KINDS:
        raise ValueError(f"`kind` must be one of {FAILURE_KINDS}, but got {kind!r}")
    trial.set_user_attr(ATTR_FAILURE, reason)
    trial.set_user_attr(ATTR_FAILURE_KIND, kind)


def is_prior(trial: optuna.trial.FrozenTrial) -> bool:
    return str(trial.user_attrs.get(ATTR_ORIGIN, "")).startswith(PRIOR)
