"""Evaluators: score a model on eval suites (lm-eval or the native scorer) and derive gain and forgetting."""

from recipe_opt.evaluate._native import ItemScores, score_items
from recipe_opt.evaluate._scorers import (
    BACKENDS,
    LmEvalScorer,
    NativeScorer,
    TaskScorer,
    make_scorer,
)
from recipe_opt.evaluate._suites import (
    PRIMARY_METRIC,
    Evaluation,
    Outcome,
    Suite,
    SuiteEvaluator,
    compute_outcome,
    suite_score,
)
from recipe_opt.evaluate._tasks import TaskDef, builtin_task_names, find_tasks, load_task

__all__ = [
    "BACKENDS",
    "PRIMARY_METRIC",
    "Evaluation",
    "ItemScores",
    "LmEvalScorer",
    "NativeScorer",
    "Outcome",
    "Suite",
    "SuiteEvaluator",
    "TaskDef",
    "TaskScorer",
    "builtin_task_names",
    "compute_outcome",
    "find_tasks",
    "load_task",
    "make_scorer",
    "score_items",
    "suite_score",
]
