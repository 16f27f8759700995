"""What the SteerLM stages share for measuring steerability: the requested targets, the prompts,
the scorer that reads achieved attributes, and the paper's default target. Kept here so that
the steerlm_sft, steerlm2 and steerability stages use it without importing one another."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from align.config.base import Ref, StrictModel
from align.steerlm.labels import format_label

# The HelpSteer2 paper's target at inference: helpful, correct, coherent, medium complexity and length.
PAPER_TARGET = {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 2, "verbosity": 2}

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


class WeightedTarget(StrictModel):
    """One attribute combination of a target distribution."""

    attributes: dict[str, int] = Field(description="Requested attributes (values 0..4).")
    weight: float = Field(1.0, gt=0, description="Relative probability of this combination.")

    _ok = field_validator("attributes")(lambda v: (format_label(v), v)[1])


def draw_weighted(options: list[WeightedTarget], count: int, rng) -> list[dict[str, int]]:
    """`count` targets drawn from a weighted list (with replacement) by `rng` (a random.Random)."""
    return [dict(t.attributes) for t in rng.choices(options, weights=[t.weight for t in options], k=count)]


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
