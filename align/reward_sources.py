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

from typing import Annotated, Literal

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
    objective: Literal["weighted", "gdpo", "target"] = Field(
        "weighted", description="weighted: the weighted sum of the attributes is the reward; gdpo (ppo): each "
                                "weighted attribute standardised over the rollout batch (GRPO: the prompt's group) "
                                "before weighting; target (ppo): minus the weighted mean distance of the predicted "
                                "attributes to the prompt's target (the stage's target_distribution, written into "
                                "the prompt as SteerLM does).")

    @model_validator(mode="after")
    def _one_source(self) -> RewardSpec:
        if (self.model is None) == (self.oracle is None):
            raise ValueError("give exactly one of model (a reward model) or oracle (the world's rule-based reward)")
        return self

    def describe(self) -> str:
        """'oracle:goodness' or 'reward_model:rm:goodness' (written to metrics.json as reward/source)."""
        weights = self.oracle if self.oracle is not None else self.weights
        name = "target" if self.objective == "target" else _weights_name(weights)
        head = "oracle" if self.oracle is not None else f"reward_model:{self.model}"
        return f"{head}:{name}" + (":gdpo" if self.objective == "gdpo" else "")


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
    if spec.objective != "weighted":
        from rewards.vector import AttributeTargetReward, AttributeVectorReward

        if spec.oracle is not None:
            from align.world.oracle import OracleAttributeScorer

            scorer, weights = OracleAttributeScorer(), spec.oracle
        else:
            from rewards.scoring import RewardScorer

            scorer, weights = RewardScorer.load(ctx.resolve(spec.model, "model")), spec.weights
        if isinstance(weights, str) and weights in scorer.attributes:
            weights = {weights: 1.0}
        if spec.objective == "target":
            return AttributeTargetReward(scorer, weights if isinstance(weights, dict) else None)
        return AttributeVectorReward(scorer, weights)
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
