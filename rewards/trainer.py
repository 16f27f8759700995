"""Reward-model training on align's BaseTrainer: regression or Bradley-Terry (SPEC.md section 2).

Items are `RegressionExample`s (masked MSE over the attributes present) or `PairExample`s
(BT on a scalar = bt_weights . attributes). After every validation the model with the
lowest validation loss so far is written to `best_dir`: the paper keeps that checkpoint.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from align.chat import pad_batch
from align.trainers.base import BaseTrainer, LengthGroupedSampler
from rewards.data import PairExample, RegressionExample
from rewards.losses import MISSING_LABEL, bradley_terry_loss, masked_mse

log = logging.getLogger("align")


def init_head_bias(model, examples: list[RegressionExample]) -> None:
    """Set the head's bias to the mean training label per attribute (missing labels skipped).

    Why: a fresh head predicts ~0 while labels average ~2, so the first steps would only learn
    the offset; starting at the mean lets every step go to the per-response signal.
    """
    labels = torch.tensor([[MISSING_LABEL if v is None else float(v) for v in e.labels] for e in examples])  # [N, A]
    valid = labels.ne(MISSING_LABEL)
    means = (labels * valid).sum(0) / valid.sum(0).clamp_min(1)  # [A]
    if model.head.bias is not None:
        with torch.no_grad():
            model.head.bias.copy_(means.to(model.head.bias))


class RewardModelTrainer(BaseTrainer):
    """Regression (masked MSE) or Bradley-Terry training of an AttributeRewardModel."""

    def __init__(self, model, tokenizer, config, output_dir, *, seed: int = 0, bt_variant: str = "scaled",
                 bt_weights: torch.Tensor | None = None, best_dir: str | Path | None = None,
                 group_by_length: bool = True, accelerator=None):
        super().__init__(model, tokenizer, config, output_dir, seed=seed, accelerator=accelerator)
        self.bt_variant = bt_variant
        n_attr = len(self.unwrapped_model().config.attributes)
        self.bt_weights = bt_weights if bt_weights is not None else torch.eye(n_attr)[0]  # [A]
        self.best_dir = Path(best_dir) if best_dir else None
        self.best_loss = math.inf
        self.best_step = -1
        self._group_by_length = group_by_length  # the stage's own switch (on by default for RMs)

    # ---- override points ---------------------------------------------------------------
    def collate(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        pad = self.tokenizer.pad_token_id
        if isinstance(examples[0], PairExample):
            seqs = [e.chosen_ids for e in examples] + [e.rejected_ids for e in examples]  # chosen first, then rejected
            return {"input_ids": pad_batch(seqs, pad), "attention_mask": pad_batch([[1] * len(s) for s in seqs], 0),
                    "strength": torch.tensor([e.strength for e in examples], dtype=torch.float32)}
        labels = [[MISSING_LABEL if v is None else float(v) for v in e.labels] for e in examples]
        return {"input_ids": pad_batch([e.input_ids for e in examples], pad),
                "attention_mask": pad_batch([[1] * len(e.input_ids) for e in examples], 0),
                "labels": torch.tensor(labels, dtype=torch.float32)}

    def compute_loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).rewards  # [B, A]
        if "labels" in batch:
            return masked_mse(rewards, batch["labels"]), {}
        scalar = rewards.float() @ self.bt_weights.to(rewards.device)  # [2B]
        chosen, rejected = scalar.chunk(2)  # [B], [B]
        loss = bradley_terry_loss(self.bt_variant, chosen, rejected, batch["strength"])
        return loss, {"accuracy": float((chosen > rejected).float().mean())}

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """Keep the model with the lowest validation loss (SPEC.md section 2)."""
        loss = metrics.get("eval/loss", math.inf)
        if loss < self.best_loss:
            self.best_loss, self.best_step = loss, self.global_step
            if self.best_dir is not None:
                self.save_best()

    # ---- helpers -----------------------------------------------------------------------
    def save_best(self) -> None:
        """Write the current weights (LoRA merged) to `best_dir` with the tokenizer.

        Every process calls it (the validation loss is reduced, so all agree): under ZeRO-3
        or FSDP the weights are gathered from their shards first.
        """
        self.save_pretrained(self.best_dir, merge_lora=True)
        if self.is_main:
            log.info("step %d: best validation loss so far %.4f (saved)", self.global_step, self.best_loss)

    @property
    def group_by_length(self) -> bool:
        return self._group_by_length or self.config.group_by_length


__all__ = ["RewardModelTrainer", "LengthGroupedSampler", "init_head_bias", "RegressionExample", "PairExample"]
