"""Proxy trainer: a fresh LoRA adapter per recipe on a base model loaded once."""

from recipe_opt.train._loop import IGNORE_INDEX, Batch, collate
from recipe_opt.train._proxy import (
    BaseModel,
    EarlyStop,
    ProxySettings,
    ProxyTrainer,
    RungFn,
    TrainingData,
    TrainResult,
    TrialDiverged,
    TrialInterrupted,
    TrialStopped,
    load_base_model,
    state_checksum,
)

__all__ = [
    "IGNORE_INDEX",
    "BaseModel",
    "Batch",
    "EarlyStop",
    "ProxySettings",
    "ProxyTrainer",
    "RungFn",
    "TrainResult",
    "TrainingData",
    "TrialDiverged",
    "TrialInterrupted",
    "TrialStopped",
    "collate",
    "load_base_model",
    "state_checksum",
]
