"""The names under which a trial and a study keep their records in Optuna's storage."""

from __future__ import annotations

import optuna

__all__ = [
    "ATTR_BASE_CHECKSUM",
    "ATTR_BASE_EVAL",
    "ATTR_BUDGET",
    "ATTR_FAILURE",
    "ATTR_FINGERPRINT",
    "ATTR_METRICS",
    "ATTR_ORIGIN",
    "ATTR_PROXY_TFLOPS",
    "ATTR_RECIPE",
    "ATTR_RUNGS",
    "ATTR_WORKER",
    "PRIOR",
    "is_prior",
]

ATTR_RECIPE = "recipe"
ATTR_METRICS = "metrics"
ATTR_FAILURE = "failure"
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


def is_prior(trial: optuna.trial.FrozenTrial) -> bool:
    return str(trial.user_attrs.get(ATTR_ORIGIN, "")).startswith(PRIOR)
