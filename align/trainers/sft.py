"""Supervised fine-tuning on chat data: next-token loss on assistant tokens only."""
from __future__ import annotations

from typing import Any

import torch

from align.chat import IGNORE_INDEX, pad_batch, pad_with_mask
from align.logprobs import logprobs_from_logits, logprobs_from_model
from align.trainers.base import BaseTrainer


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihood of `labels` under `logits`, shifted for causal LMs.

    logits: [B, T, V], labels: [B, T] with IGNORE_INDEX where no loss is taken.
    Returns (nll [B, T-1], mask [B, T-1]); nll is 0 where mask is 0. Chunk-wise in fp32, labelled
    rows only (`align.logprobs`); `model_token_nll` does the same without the full logits.
    """
    mask = labels[:, 1:].ne(IGNORE_INDEX)
    logps, _ = logprobs_from_logits(logits, labels.clamp_min(0), mask=mask)
    return -logps * mask, mask


def model_token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_nll` of `batch["labels"]` under `model`, from its hidden states through the LM head in chunks."""
    labels = batch["labels"]
    mask = labels[:, 1:].ne(IGNORE_INDEX)
    extra = {k: batch[k] for k in ("position_ids",) if k in batch}
    logps = logprobs_from_model(model, batch["input_ids"], targets=labels.clamp_min(0), mask=mask,
                                attention_mask=batch["attention_mask"], use_cache=False, **extra).logps
    return -logps * mask, mask


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
        nll, mask = model_token_nll(model, batch)
        loss = nll.sum() / mask.sum().clamp_min(1)  # = sft_loss(logits, labels), without the logits
        return loss, {"tokens": float(batch["labels"].ne(IGNORE_INDEX).sum())}
