"""Supervised fine-tuning on chat data: next-token loss on assistant tokens only."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from align.chat import IGNORE_INDEX, pad_batch, pad_with_mask
from align.trainers.base import BaseTrainer


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihood of `labels` under `logits`, shifted for causal LMs.

    logits: [B, T, V], labels: [B, T] with IGNORE_INDEX where no loss is taken.
    Returns (nll [B, T-1], mask [B, T-1]); nll is 0 where mask is 0.
    """
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    mask = target.ne(IGNORE_INDEX)
    nll = F.cross_entropy(logits.transpose(1, 2), target.clamp_min(0), reduction="none")
    return nll * mask, mask


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL over all labelled tokens of the batch (token-weighted, as in TRL/HF)."""
    nll, mask = token_nll(logits, labels)
    return nll.sum() / mask.sum().clamp_min(1)


class SFTTrainer(BaseTrainer):
    """SFT. Items are `TokenizedExample`s (input_ids, labels)."""

    def collate(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        ids, mask = pad_with_mask([e.input_ids for e in examples], self.tokenizer.pad_token_id)
        labels = pad_batch([e.labels for e in examples], IGNORE_INDEX)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def compute_loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss = sft_loss(out.logits, batch["labels"])
        return loss, {"tokens": float(batch["labels"].ne(IGNORE_INDEX).sum())}
