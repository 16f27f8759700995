"""Rewards that keep the attributes apart: multi-objective RL from the attribute heads.

`AttributeVectorReward` wraps any AttributeScorer (the reward model's five heads, or the world
oracle's labels) with a weight per attribute. Called as a RewardFunction it returns the weighted
sum (what the stages report); a trainer that knows about vectors calls `vectors()` for the
per-attribute scores [N, K] of the weighted attributes and combines them itself. PPO and GRPO do
GDPO-style (arXiv 2601.05242): each attribute standardised over the rollout batch (PPO) or the
prompt's group (GRPO) before weighting, so an attribute with a wide spread (verbosity) does not
drown one with a narrow spread (correctness), as it does when the weighted sum is normalised.

`AttributeTargetReward` scores how close the predicted attributes come to a requested vector:
minus the weighted mean absolute distance over the target's attributes. With the target drawn
per prompt and written into the prompt as SteerLM writes it (the attribute prefix of the
assistant turn), RL learns to steer like SteerLM; the trainer passes each response's target.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from rewards.presets import resolve_weights


class AttributeVectorReward:
    """Per-attribute scores of an AttributeScorer, with weights; `__call__` gives their weighted sum."""

    def __init__(self, scorer, weights="goodness"):
        self.scorer = scorer
        w = resolve_weights(weights, scorer.attributes)
        self.index = [i for i, v in enumerate(w.tolist()) if v != 0.0]
        self.attributes = [scorer.attributes[i] for i in self.index]
        self.weights = w[self.index]

    def vectors(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """[N, K]: the scorer's prediction of each weighted attribute."""
        return torch.as_tensor(self.scorer.predict(prompts, responses), dtype=torch.float32)[:, self.index]

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> list[float]:
        return (self.vectors(prompts, responses) @ self.weights).tolist()


class AttributeTargetReward:
    """-(sum_a w_a |pred_a - target_a|) / sum_a w_a over the target's attributes (0 = exactly on target)."""

    uses_targets = True

    def __init__(self, scorer, weights: Mapping[str, float] | None = None):
        self.scorer = scorer
        self.weights = dict(weights or {})

    def __call__(self, prompts: list[list[dict]], responses: list[str],
                 targets: list[Mapping[str, int]] | None = None) -> list[float]:
        if targets is None:
            raise ValueError("an attribute-target reward needs each response's target (the stage's "
                             "target_distribution)")
        pred = torch.as_tensor(self.scorer.predict(prompts, responses), dtype=torch.float32)
        col = {a: i for i, a in enumerate(self.scorer.attributes)}
        out = []
        for row, target in zip(pred, targets):
            w = {a: float(self.weights.get(a, 1.0)) for a in target}
            total = sum(w.values()) or 1.0
            out.append(-sum(w[a] * abs(float(row[col[a]]) - v) for a, v in target.items()) / total)
        return out


def standardized_sum(vectors: torch.Tensor, weights: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """GDPO: each attribute standardised within each of `groups` equal consecutive groups, then weighted.

    vectors [N, K], weights [K] -> [N]. An attribute that does not vary within a group contributes 0.
    """
    v = vectors.reshape(groups, -1, vectors.shape[1])
    z = (v - v.mean(1, keepdim=True)) / (v.std(1, keepdim=True, unbiased=False) + 1e-6)
    return (z @ weights.to(z)).reshape(-1)
