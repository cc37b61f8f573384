"""Proxy trainer: a fresh LoRA adapter per recipe on a base model loaded once."""

from recipe_opt.train._checkpoint import BaseModel, load_base_model, load_tokenizer, model_skeleton, state_checksum
from recipe_opt.train._loop import IGNORE_INDEX, Batch, collate
from recipe_opt.train._probe import StepProbe, lora_params, probe_step
from recipe_opt.train._proxy import (
    EarlyStop,
    Fidelity,
    ProxySettings,
    ProxyTrainer,
    RungFn,
    TrainingData,
    TrainResult,
    TrainState,
    TrialDiverged,
    TrialInterrupted,
    TrialStopped,
    flops_per_token,
)
from recipe_opt.train._targets import (
    ALL_LINEAR,
    ATTENTION,
    linear_layers,
    query_value_modules,
    resolve_target_modules,
    resolve_target_sets,
)

__all__ = [
    "ALL_LINEAR",
    "ATTENTION",
    "IGNORE_INDEX",
    "BaseModel",
    "Batch",
    "EarlyStop",
    "Fidelity",
    "ProxySettings",
    "ProxyTrainer",
    "RungFn",
    "StepProbe",
    "TrainResult",
    "TrainState",
    "TrainingData",
    "TrialDiverged",
    "TrialInterrupted",
    "TrialStopped",
    "collate",
    "flops_per_token",
    "linear_layers",
    "load_base_model",
    "load_tokenizer",
    "lora_params",
    "model_skeleton",
    "probe_step",
    "query_value_modules",
    "resolve_target_modules",
    "resolve_target_sets",
    "state_checksum",
]
