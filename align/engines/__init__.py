"""Sampling engines: `native` (the project's decode loop), `hf` (transformers.generate), `vllm`.

    engine = make_engine("vllm", model, tokenizer, seed=0)   # once per stage
    rows = engine.generate(prompts, SamplingConfig(n=4, temperature=0.7)).tokens
    ...train...
    engine.sync_weights(model)                              # after each optimisation phase
    engine.close()

See align/engines/base.py for the contract every engine keeps.
"""
from __future__ import annotations

from align.engines.base import (
    ENGINE_HELP,
    ENGINES,
    EngineName,
    Generation,
    SamplingEngine,
    encode_prompts,
)
from align.engines.native import HFEngine, NativeEngine
from align.engines.vllm_engine import (
    INSTALL_HINT,
    EngineError,
    VLLMEngine,
    vllm_available,
)

__all__ = ["ENGINES", "ENGINE_HELP", "EngineError", "EngineName", "Generation", "HFEngine", "NativeEngine",
           "SamplingEngine", "VLLMEngine", "encode_prompts", "engine_problems", "make_engine", "reuse_or_start",
           "vllm_available"]


def make_engine(name: str, model, tokenizer, *, seed: int = 0, **options) -> SamplingEngine:
    """The engine called `name` on `model` (vllm: started now, from a copy of the model's current weights)."""
    if name == "native":
        return NativeEngine(model, tokenizer)
    if name == "hf":
        return HFEngine(model, tokenizer)
    if name == "vllm":
        return VLLMEngine(model, tokenizer, seed=seed, **options)
    raise EngineError(f"unknown sampling engine {name!r}; known: {', '.join(ENGINES)}")


def reuse_or_start(engine: SamplingEngine | None, name: str, model, tokenizer, *, seed: int = 0):
    """For a stage that samples between optimisation phases (iterative DPO rounds, SteerLM 2.0
    iterations): None for `native` (the caller keeps its own `align.generation` path); else the
    running engine with `model`'s current weights synced into it (the sync time is logged), or, the
    first time, a new engine started from `model`."""
    if name == "native":
        return None
    if engine is None:
        return make_engine(name, model, tokenizer, seed=seed)
    engine.sync_weights(model)
    return engine


def engine_problems(config) -> list[str]:
    """Recipe problems of a stage config's `engine` fields (on the config or a nested block such as
    dpo's `pairs`): engine vllm without the vllm package, found before any stage computes."""
    found = []
    for path, value in _engine_fields(config):
        if value == "vllm" and not vllm_available():
            found.append(f"{path}: engine vllm needs the vllm package, which is not installed in this "
                         f"environment: {INSTALL_HINT}")
    return found


def _engine_fields(config, prefix: str = ""):
    from pydantic import BaseModel

    for name in type(config).model_fields:
        value = getattr(config, name, None)
        if name == "engine" and isinstance(value, str):
            yield f"{prefix}{name}", value
        elif isinstance(value, BaseModel):
            yield from _engine_fields(value, f"{prefix}{name}.")
