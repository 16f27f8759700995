"""Typed recipe and stage configuration (pydantic, unknown keys are errors)."""
from align.config.base import LoRASpec, OracleEvalConfig, StrictModel, TrainConfig
from align.config.model_spec import ModelSpec, TinyModelSpec

__all__ = ["LoRASpec", "ModelSpec", "OracleEvalConfig", "StrictModel", "TinyModelSpec", "TrainConfig"]
