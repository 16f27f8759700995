"""The one small interface every policy trainer takes a reward through (DESIGN.md).

PPO (and anything else that needs a scalar per response) takes a `RewardFunction`: any
callable (prompts as chat messages, responses) -> list of floats. `RMReward` adapts a
trained reward model; a rule-based or remote scorer plugs in the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from rewards.scoring import RewardScorer


@runtime_checkable
class RewardFunction(Protocol):
    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> list[float]:
        """One float per (prompt, response); higher is better."""
        ...


class RMReward:
    """Scalarised reward-model score: weights preset (or vector), optionally standardised."""

    def __init__(self, scorer: RewardScorer | str | Path, weights="goodness", standardize: bool = False, **load_kwargs):
        self.scorer = scorer if isinstance(scorer, RewardScorer) else RewardScorer.load(scorer, **load_kwargs)
        self.weights = weights
        self.standardize = standardize

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> list[float]:
        return self.scorer.scalar(prompts, responses, weights=self.weights, standardize=self.standardize).tolist()
