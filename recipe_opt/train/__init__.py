"""Proxy trainer: a fresh LoRA adapter per recipe on a base model loaded once."""

from recipe_opt.train._loop import IGNORE_INDEX, Batch, collate
from recipe_opt.train._proxy import (
    BaseModel,
    ProxySettings,
    ProxyTrainer,
    TrainingData,
    TrainResult,
    TrialDiverged,
    load_base_model,
    state_checksum,
)

__all__ = [
    "IGNORE_INDEX",
    "BaseModel",
    "Batch",
    "ProxySettings",
    "ProxyTrainer",
    "TrainResult",
    "TrainingData",
    "TrialDiverged",
    "collate",
    "load_base_model",
    "state_checksum",
]
