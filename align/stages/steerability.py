"""Stage `kind: steerability`: how well each listed model hits a grid of requested attributes."""
from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import Field

from align.config.base import Ref
from align.stages.base import Stage, StageConfig, register_stage
from align.steerlm.labels import DEFAULT_MARKER
from align.steerlm.steer_eval import (
    SteerEvalConfig,
    load_eval_prompts,
    load_scorer,
    steer_metrics,
)

log = logging.getLogger("align")

class SteerabilityConfig(StageConfig):
    """Steering error |requested - achieved| of several SteerLM models on a grid of targets."""

    kind: Literal["steerability"] = "steerability"
    models: list[Annotated[str, Ref(output="model")]] = Field(description="Models to measure: stage names or dirs.")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Reward model that also reads the achieved attributes (stage or dir).")
    marker: str = Field(DEFAULT_MARKER, description="Marker before the label string (as the models were trained).")
    eval: SteerEvalConfig = Field(description="Prompts and targets.")


@register_stage
class SteerabilityStage(Stage):
    """Measure steering error for each model in `models` (metrics keyed by model name)."""

    kind = "steerability"
    Config = SteerabilityConfig

    def run(self, config: SteerabilityConfig, ctx) -> dict:
        from align.config.model_spec import ModelSpec
        from align.models import load_model
        from align.steerlm.steerability import with_suffix

        prompts = load_eval_prompts(config.eval, ctx)
        scorer = load_scorer(ctx.resolve(config.reward_model, "model") if config.reward_model else None)
        metrics: dict[str, float] = {}
        for name in config.models:
            model, tok = load_model(ModelSpec(path=ctx.resolve(name, "model")), seed=ctx.seed)
            found = steer_metrics(model, tok, prompts, config.eval, config.marker, scorer, ctx.seed)
            log.info("steerability %s: %s", name, "  ".join(f"{k}={v:.3f}" for k, v in found.items()))
            metrics.update(with_suffix(found, name.replace("/", "_")))
        return metrics
