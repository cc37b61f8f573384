"""The Optuna study: trials of proxy fine-tunes, selection, apply, and the records they leave.

Which module owns what:

| module | owns |
|---|---|
| `_inputs` | a command's inputs: config with overrides, search space, base model resolved to a directory |
| `_base` | the base model's weights (lineage, hub), data manifest, the space resolved against the model |
| `_setup` | what is built once per process: base model, tokenised data, trainer, evaluators |
| `_storage` | the database, `open_study` / `load_study`, the resume fingerprint |
| `_lock` | one process at a time on a SQLite study (`<database>.lock`) |
| `_progress` | the `Reporter` protocol the study reports progress to, and `TrialSummary` |
| `_objective` | one trial: sample, proxy-train, score, set the gates as constraints; early-stopping rungs |
| `_gates` | the release gates, one definition for search, selection, apply and reports |
| `_records` | `TrialRecord` / `StudyRecord`: the one reader of what a study stores |
| `_runner` | the trial lifecycle (`StudyRunner`: prepare, attach, work, run) |
| `_workers` | the trial loop shared by workers: budget lock, heartbeats, retries |
| `_ladder` | a budgeted search's plan (screens, rungs, finalists) and its Pareto-rank promotion order |
| `_warm` | warm starts from earlier cycles |
| `_select` | selection under a policy, with re-runs, and its records |
| `_apply` | the full-fidelity run, release decision and new lineage version |
| `_train` | any recipe at full fidelity, judged by the gates: `train`, `apply`'s baselines, the oracle |
| `_noise` | how sure a value is (eval sampling, re-runs, declared seed noise); task moves beyond noise |
| `_price` | the search's price in full updates of its pick |
| `_fidelity` | proxy-vs-full rank correlation |
| `_projection` | one trial's projected cost and time (a measured proxy step); refusing a trial that cannot fit |
| `_validate` | `recipe-opt validate`'s checks |
"""

from recipe_opt.study._apply import ApplyResult, apply_selected
from recipe_opt.study._attrs import (
    ATTR_BASE_EVAL,
    ATTR_BUDGET,
    ATTR_FAILURE,
    ATTR_FAILURE_KIND,
    ATTR_METRICS,
    ATTR_ORIGIN,
    ATTR_PROXY_TFLOPS,
    ATTR_RECIPE,
    ATTR_RUNGS,
    ATTR_WORKER,
    is_prior,
)
from recipe_opt.study._base import data_manifest, file_sha256, resolve_base_model, resolve_space
from recipe_opt.study._fidelity import FidelityReport, fidelity_report, spearman
from recipe_opt.study._gates import GateCheck, Scored, check_gates, constraints, failed_reason, gate_values
from recipe_opt.study._inputs import load_inputs
from recipe_opt.study._noise import Spread, TaskMove, task_moves, value_spread, within_noise
from recipe_opt.study._objective import Measurement, Objective
from recipe_opt.study._prescreen import AdapterMixer, Candidate, PrescreenResult, Probe, run_prescreen
from recipe_opt.study._price import SearchPrice, search_price
from recipe_opt.study._progress import Reporter, SilentReporter, TrialSummary
from recipe_opt.study._records import Failure, StudyRecord, TrialRecord, failure_reason
from recipe_opt.study._runner import StudyRunner, create_sampler, proxy_compute
from recipe_opt.study._select import (
    Rerunner,
    SelectedRecipe,
    pareto_front,
    policy_scores,
    record_selection,
    select_and_record,
    select_recipe,
    weights_fingerprint,
)
from recipe_opt.study._setup import Setup
from recipe_opt.study._storage import check_storage, load_study, open_storage, open_study
from recipe_opt.study._train import FullFidelity, FullRun, TrainedRecipe, baseline_recipes, release_checks, run_full
from recipe_opt.study._validate import FileCheck, validate_file
from recipe_opt.study._warm import WarmStart, WarmStartRequest, plan_warm_start
from recipe_opt.study._workers import LoopOutcome, TrialLoop, WorkerInfo, count_trials

__all__ = [
    "ATTR_BASE_EVAL",
    "ATTR_BUDGET",
    "ATTR_FAILURE",
    "ATTR_FAILURE_KIND",
    "ATTR_METRICS",
    "ATTR_ORIGIN",
    "ATTR_PROXY_TFLOPS",
    "ATTR_RECIPE",
    "ATTR_RUNGS",
    "ATTR_WORKER",
    "AdapterMixer",
    "ApplyResult",
    "Candidate",
    "Failure",
    "FidelityReport",
    "FileCheck",
    "FullFidelity",
    "FullRun",
    "GateCheck",
    "LoopOutcome",
    "Measurement",
    "Objective",
    "PrescreenResult",
    "Probe",
    "Reporter",
    "Rerunner",
    "Scored",
    "SearchPrice",
    "SelectedRecipe",
    "Setup",
    "SilentReporter",
    "Spread",
    "StudyRecord",
    "StudyRunner",
    "TaskMove",
    "TrainedRecipe",
    "TrialLoop",
    "TrialRecord",
    "TrialSummary",
    "WarmStart",
    "WarmStartRequest",
    "WorkerInfo",
    "apply_selected",
    "baseline_recipes",
    "check_gates",
    "check_storage",
    "constraints",
    "count_trials",
    "create_sampler",
    "data_manifest",
    "failed_reason",
    "failure_reason",
    "fidelity_report",
    "file_sha256",
    "gate_values",
    "is_prior",
    "load_inputs",
    "load_study",
    "open_storage",
    "open_study",
    "pareto_front",
    "plan_warm_start",
    "policy_scores",
    "proxy_compute",
    "record_selection",
    "release_checks",
    "resolve_base_model",
    "resolve_space",
    "run_full",
    "run_prescreen",
    "search_price",
    "select_and_record",
    "select_recipe",
    "spearman",
    "task_moves",
    "validate_file",
    "value_spread",
    "weights_fingerprint",
    "within_noise",
]
