"""Where a reward-driven algorithm's reward comes from: a trained reward model or the world's oracle.

DESIGN.md: one reward interface and one attribute-scorer interface, so an ablation with the
gold reward is one line of a recipe. Two config blocks, shared by the stages that need them:

- `RewardSpec` -> a scalar `RewardFunction` (PPO, iterative DPO, reported rewards):
  `{model: rm, weights: goodness}` or `{oracle: goodness}`;
- `AttributeSourceSpec` -> an `AttributeScorer` (SteerLM 2.0's P(a|x,y)):
  `{model: rm}` or `{oracle: true}`.

Both implement the same interfaces as a user's own scorer (rewards.interface), and both
name themselves (`describe`), which the stages write to metrics.json as `reward/source`.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from align.config.base import Ref, StrictModel


class RewardSpec(StrictModel):
    """Where the scalar reward comes from: exactly one of `model` (a reward model) or `oracle`."""

    model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Reward model: an earlier reward_model stage (e.g. rm) or a directory.")
    weights: str | dict[str, float] = Field("goodness", description="Scalarisation: a preset name or {attribute: weight}.")
    standardize: bool = Field(True, description="Standardise the RM score by its mean/std over the RM's training responses.")
    oracle: str | dict[str, float] | None = Field(
        None, description="Rule-based reward from the world oracle: 'goodness', an attribute name, or {attribute: weight}.")

    @model_validator(mode="after")
    def _one_source(self) -> RewardSpec:
        if (self.model is None) == (self.oracle is None):
            raise ValueError("give exactly one of model (a reward model) or oracle (the world's rule-based reward)")
        return self

    def describe(self) -> str:
        """'oracle:goodness' or 'reward_model:rm:goodness' (written to metrics.json as reward/source)."""
        if self.oracle is not None:
            return f"oracle:{_weights_name(self.oracle)}"
        return f"reward_model:{self.model}:{_weights_name(self.weights)}"


class AttributeSourceSpec(StrictModel):
    """Where per-attribute labels come from: exactly one of `model` (a reward model) or `oracle: true`."""

    model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Attribute reward model: an earlier reward_model stage (e.g. rm) or a directory.")
    oracle: bool = Field(False, description="The world oracle's integer labels (the gold attribute scorer).")

    @model_validator(mode="after")
    def _one_source(self) -> AttributeSourceSpec:
        if (self.model is None) == (not self.oracle):
            raise ValueError("give exactly one of model (a reward model) or oracle: true (the world's labels)")
        return self

    def describe(self) -> str:
        return "oracle" if self.oracle else f"reward_model:{self.model}"


def _weights_name(weights) -> str:
    return weights if isinstance(weights, str) else ",".join(f"{k}={v:g}" for k, v in weights.items())


def build_reward(spec: RewardSpec, ctx):
    """The RewardFunction a RewardSpec names."""
    if spec.oracle is not None:
        from align.world.oracle import OracleReward

        return OracleReward(spec.oracle)
    from rewards.interface import RMReward

    return RMReward(ctx.resolve(spec.model, "model"), weights=spec.weights, standardize=spec.standardize)


def build_attribute_scorer(spec: AttributeSourceSpec, ctx):
    """The AttributeScorer an AttributeSourceSpec names (`.attributes`, `.predict(prompts, responses)`)."""
    if spec.oracle:
        from align.world.oracle import OracleAttributeScorer

        return OracleAttributeScorer()
    from rewards.scoring import RewardScorer

    return RewardScorer.load(ctx.resolve(spec.model, "model"))
