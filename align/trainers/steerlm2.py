"""SteerLM 2.0 training half: fit Q_theta(y|a,x) to P(y|a,x) ~ P(a|x,y) P(y|x) from samples of Q'.

One dataset item is a `SampleGroup`: the n responses drawn for one (prompt, target) with
their fixed log-weights. Groups stay whole inside a micro-batch (the normalisations of
w' and b' are over a group), so `batch_size` counts groups, not sequences.
The loss is `align.steerlm.weights.steerlm2_loss` (SPEC.md section 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from align.chat import TokenizedExample
from align.steerlm.sequences import collate_examples, sequence_nll
from align.steerlm.weights import (
    effective_sample_size, kl_divergence, log_normalized_baseline, log_normalized_weights, steerlm2_loss,
)
from align.trainers.base import BaseTrainer


@dataclass
class SampleGroup:
    """n samples for one (x, a): sequences conditioned on a, and their fixed log-probabilities [n]."""

    examples: list[TokenizedExample]
    log_p_attr: list[float]   # log P(a|x,y_i) from the reward model
    log_p_ref: list[float]    # log P(y_i|x) under the unconditional SFT model
    log_q_prop: list[float]   # log Q'(y_i|a,x) under the proposal that sampled them


class SteerLM2Trainer(BaseTrainer):
    """Minimises sum_i (w'_i - b'_i) NLL_i per group. Items: `SampleGroup`s of equal n."""

    metric_prefix = "train"

    def __init__(self, *args, normalize_by_tokens: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalize_by_tokens = normalize_by_tokens

    def collate(self, groups: list[SampleGroup]) -> dict[str, Any]:
        n = len(groups[0].examples)
        if any(len(g.examples) != n for g in groups):
            raise ValueError("all groups in a batch must have the same number of samples")
        batch = collate_examples([e for g in groups for e in g.examples], self.tokenizer.pad_token_id)
        for key in ("log_p_attr", "log_p_ref", "log_q_prop"):
            batch[key] = torch.tensor([getattr(g, key) for g in groups], dtype=torch.float32)  # [G, n]
        return batch

    def compute_loss(self, model, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        groups, n = batch["log_q_prop"].shape
        nll, tokens = sequence_nll(model, batch)           # [G*n] each
        nll, tokens = nll.view(groups, n), tokens.view(groups, n)
        log_w = log_normalized_weights(batch["log_p_attr"], batch["log_p_ref"], batch["log_q_prop"])
        log_b = log_normalized_baseline(-nll, batch["log_q_prop"])
        w, b = log_w.exp(), log_b.exp()
        loss = steerlm2_loss(nll, w, b, tokens if self.normalize_by_tokens else None)
        return loss, {
            "kl_w_b": float(kl_divergence(log_w, log_b).mean()),
            "ess": float(effective_sample_size(w).mean()),
            "nll_per_token": float(nll.detach().sum() / tokens.sum().clamp_min(1)),
        }
