"""Serve a trained reward model: per-attribute predictions, scalar rewards, log P(a|x,y).

This is the interface PPO, DPO and SteerLM 2.0 call (see the API contract in README
"Reward models"). Inputs are chat messages (the prompt) and response strings; batching,
chat-template rendering and padding happen here.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from align.chat import pad_with_mask
from align.errors import AlignError
from rewards.beta import beta_attribute_log_prob
from rewards.data import encode_response
from rewards.presets import resolve_weights

log = logging.getLogger("align")

STATS_FILE = "reward_stats.json"


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class RewardScorer:
    """A loaded reward model + tokenizer, scoring (prompt, response) pairs in batches."""

    def __init__(self, model, tokenizer, *, stats: dict | None = None, batch_size: int = 32, max_length: int = 1024):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.stats = stats or {}
        self.batch_size = batch_size
        self.max_length = max_length

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", batch_size: int = 32, max_length: int = 1024,
             dtype: torch.dtype | str | None = None) -> "RewardScorer":
        """Load a reward-model directory (ours or a sequence-classification checkpoint) with its tokenizer."""
        from transformers import AutoTokenizer

        from rewards.model import load_reward_model

        model = load_reward_model(path, dtype=dtype).to(_pick_device(device))
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise AlignError(f"cannot load the tokenizer saved with the reward model {str(path)!r}: {exc}") from exc
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        stats_file = Path(path) / STATS_FILE
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        return cls(model, tokenizer, stats=stats, batch_size=batch_size, max_length=max_length)

    @property
    def attributes(self) -> list[str]:
        return list(self.model.config.attributes)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """Attribute predictions [N, A] (0..4 scale, `.attributes` order), float32 on CPU."""
        if len(prompts) != len(responses):
            raise AlignError(f"{len(prompts)} prompts but {len(responses)} responses")
        encoded = [encode_response(self.tokenizer, p, r, self.max_length)[0] for p, r in zip(prompts, responses)]
        out = torch.zeros(len(encoded), len(self.attributes))
        # Length-sorted batches pad less; results go back to input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, mask = pad_with_mask([encoded[i] for i in idx], pad)
            rewards = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).rewards
            out[idx] = rewards.float().cpu()
        return out

    def scalar(self, prompts: list[list[dict]], responses: list[str], weights="goodness",
               standardize: bool = False) -> torch.Tensor:
        """Weighted sum of predicted attributes [N]; optionally (r - mean) / std over the RM's training responses."""
        w = resolve_weights(weights, self.attributes)  # [A]
        reward = self.predict(prompts, responses) @ w  # [N]
        if standardize:
            mean, std = self.reward_mean_std(weights)
            reward = (reward - mean) / std
        return reward

    def reward_mean_std(self, weights="goodness") -> tuple[float, float]:
        """Mean and std of the scalar reward over the training responses, from the stored statistics.

        Any weight vector works: mean = w.mu and var = w' Sigma w from the stored attribute mean
        and covariance (a stored per-preset figure is used when present).
        """
        if isinstance(weights, str) and weights in self.stats.get("presets", {}):
            entry = self.stats["presets"][weights]
            return float(entry["mean"]), max(float(entry["std"]), 1e-6)
        if "attribute_mean" not in self.stats:
            raise AlignError(f"this reward model has no {STATS_FILE}: cannot standardise (train it with "
                             "`kind: reward_model`, or call scalar(..., standardize=False))")
        w = resolve_weights(weights, self.attributes).double()
        mu = torch.tensor(self.stats["attribute_mean"], dtype=torch.float64)
        cov = torch.tensor(self.stats["attribute_cov"], dtype=torch.float64)
        return float(w @ mu), max(float(w @ cov @ w) ** 0.5, 1e-6)

    def log_prob(self, prompts: list[list[dict]], responses: list[str], target: dict[str, int],
                 concentration: float = 24.0) -> torch.Tensor:
        """log P(a|x,y) [N]: sum over `target`'s attributes of the Beta bin log-mass (SPEC.md section 4)."""
        unknown = [a for a in target if a not in self.attributes]
        if unknown:
            raise AlignError(f"target attribute(s) {unknown} not predicted by this model ({', '.join(self.attributes)})")
        pred = self.predict(prompts, responses)  # [N, A]
        cols = [self.attributes.index(a) for a in target]
        values = torch.tensor([float(target[a]) for a in target])  # [K]
        return beta_attribute_log_prob(pred[:, cols], values, concentration=concentration).sum(-1)  # [N]


def compute_reward_stats(predictions: torch.Tensor, attributes: list[str]) -> dict:
    """Mean/std of each preset's scalar and the attribute mean/covariance, over predictions [N, A]."""
    from rewards.presets import WEIGHT_PRESETS

    pred = predictions.double()
    mu = pred.mean(0)
    centred = pred - mu
    cov = centred.T @ centred / max(pred.shape[0] - 1, 1)
    presets = {}
    for name, weights in WEIGHT_PRESETS.items():
        if any(a not in attributes and v != 0 for a, v in weights.items()):
            continue
        scalar = pred @ resolve_weights(weights, attributes).double()
        presets[name] = {"mean": float(scalar.mean()), "std": float(scalar.std()) if len(scalar) > 1 else 1.0}
    return {"n": int(pred.shape[0]), "attributes": list(attributes), "attribute_mean": mu.tolist(),
            "attribute_cov": cov.tolist(), "presets": presets}
