"""Stage `kind: steerability`: how well each listed model hits a grid of requested attributes."""
from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import Field, field_validator

from align.config.base import Ref, StrictModel
from align.stages.base import Stage, StageConfig, register_stage
from align.steerlm.labels import DEFAULT_MARKER, format_label

log = logging.getLogger("align")

# Ask for helpful, correct, coherent answers at several lengths and vocabularies.
DEFAULT_GRID = [
    {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": c, "verbosity": v}
    for c in (0, 2) for v in (1, 3)
]


def _check_targets(targets: list[dict[str, int]]) -> list[dict[str, int]]:
    for t in targets:
        format_label(t)  # raises ValueError naming the bad attribute or value
    return targets


class SteerEvalConfig(StrictModel):
    """Targets to request and prompts to answer when measuring steerability."""

    prompts: Annotated[str, Ref(output="prompts_test")] = Field(description="Prompt set (e.g. world.prompts_test).")
    max_prompts: int = Field(32, ge=1, description="Prompts per target.")
    targets: list[dict[str, int]] = Field(default_factory=lambda: [dict(t) for t in DEFAULT_GRID],
                                          description="Grid of attribute vectors to request (values 0..4).")
    max_new_tokens: int = Field(48, ge=1, description="Tokens per answer.")
    temperature: float = Field(0.0, ge=0.0, description="0: greedy answers; above 0: sampled answers.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling when temperature > 0.")
    samples: int = Field(1, ge=1, description="Sampled answers per (target, prompt) when temperature > 0.")
    batch_size: int = Field(64, ge=1, description="Prompts per generation batch.")
    oracle: bool = Field(True, description="Also score with the world oracle (world prompts only).")

    _targets_ok = field_validator("targets")(_check_targets)


class SteerabilityConfig(StageConfig):
    """Steering error |requested - achieved| of several SteerLM models on a grid of targets."""

    kind: Literal["steerability"] = "steerability"
    models: list[Annotated[str, Ref(output="model")]] = Field(description="Models to measure: stage names or dirs.")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Reward model that also reads the achieved attributes (stage or dir).")
    marker: str = Field(DEFAULT_MARKER, description="Marker before the label string (as the models were trained).")
    eval: SteerEvalConfig = Field(description="Prompts and targets.")


def load_eval_prompts(cfg: SteerEvalConfig, ctx) -> list[list[dict]]:
    from align.data import load_prompts

    return load_prompts(ctx.resolve(cfg.prompts, "prompts_test"))[: cfg.max_prompts]


def steer_metrics(model, tokenizer, prompts, cfg: SteerEvalConfig, marker: str, scorer, seed: int) -> dict:
    from align.steerlm.steerability import measure_steerability

    return measure_steerability(model, tokenizer, prompts, cfg.targets, max_new_tokens=cfg.max_new_tokens,
                                batch_size=cfg.batch_size, marker=marker, scorer=scorer, use_oracle=cfg.oracle,
                                seed=seed, temperature=cfg.temperature, top_p=cfg.top_p, samples=cfg.samples)


def load_scorer(path: str | None):
    if path is None:
        return None
    from rewards.scoring import RewardScorer

    return RewardScorer.load(path)


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
