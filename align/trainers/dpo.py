"""DPO trainer: preference pairs, reference log-probabilities computed once, DPO-family losses.

The reference is the policy as it stands before training. When it is frozen (always, here)
its log-probabilities are a fixed property of each pair, so they are computed once in
`precompute_reference` and carried in the batch: one forward per step instead of two.
With LoRA the reference is the same model with the adapter disabled, so no copy is held.

Override points: `compute_loss(model, batch)` (calls `align.losses.dpo_loss`) and
`sequence_logps(model, batch)` (summed completion log-probs of every row).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from align.chat import pad_batch, pad_with_mask, render
from align.config.base import TrainConfig
from align.logprobs import logprobs_from_logits, logprobs_from_model
from align.losses import chosen_nll, dpo_loss
from align.trainers.base import BaseTrainer, example_length


@dataclass
class PairExample:
    """One tokenized preference pair; ref_* are filled by `precompute_reference`."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    strength: float = 1.0
    ref_chosen: float | None = None
    ref_rejected: float | None = None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(tokenizer, messages: list[dict], chosen: str, rejected: str, strength: float = 1.0,
                  max_length: int = 1024) -> PairExample | None:
    """Prompt and completions through the chat template, split as TRL does.

    The completion starts where the tokenized prompt (with generation prompt) and the
    tokenized full conversation diverge. Sequences are cut at max_length from the end;
    a pair is dropped (None) when the prompt alone fills max_length.
    """
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt = ids(render(tokenizer, messages, add_generation_prompt=True))
    full_c = ids(render(tokenizer, messages + [{"role": "assistant", "content": chosen}]))
    full_r = ids(render(tokenizer, messages + [{"role": "assistant", "content": rejected}]))
    n = min(_common_prefix(prompt, full_c), _common_prefix(prompt, full_r))
    if n >= max_length:
        return None
    room = max_length - n
    return PairExample(prompt[:n], full_c[n:][:room], full_r[n:][:room], float(strength))


def collate_pairs(examples: list[PairExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows [chosen_1..chosen_B, rejected_1..rejected_B], right-padded; completion_mask marks response tokens."""
    seqs, comp = [], []
    for part in ("chosen_ids", "rejected_ids"):
        for e in examples:
            c = getattr(e, part)
            seqs.append(e.prompt_ids + c)
            comp.append([0] * len(e.prompt_ids) + [1] * len(c))
    input_ids, attention = pad_with_mask(seqs, pad_id)
    completion = pad_batch(comp, 0)
    batch = {"input_ids": input_ids, "attention_mask": attention, "completion_mask": completion,
             "strength": torch.tensor([e.strength for e in examples], dtype=torch.float32)}
    if all(e.ref_chosen is not None for e in examples):
        batch["ref_chosen"] = torch.tensor([e.ref_chosen for e in examples], dtype=torch.float32)
        batch["ref_rejected"] = torch.tensor([e.ref_rejected for e in examples], dtype=torch.float32)
    return batch


def token_logps(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(x_t | x_<t) for t >= 1: logits [B, T, V], input_ids [B, T] -> [B, T-1].

    For a caller that already has the logits: computed chunk-wise in fp32 (no fp32 copy of the
    logits; `align.logprobs`). The trainers call `logprobs_from_model`, which never builds them.
    """
    return logprobs_from_logits(logits, input_ids)[0]


def reference_context(model):
    """With a peft model, a context that disables the adapter (the base model is the reference)."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


class DPOTrainer(BaseTrainer):
    """DPO and its variants (sigmoid, IPO, margin, scaled) on `PairExample`s."""

    def __init__(self, model, tokenizer, config: TrainConfig, output_dir, *, beta: float = 0.1,
                 loss_type: str = "sigmoid", label_smoothing: float = 0.0, sft_weight: float = 0.0, ref_model=None,
                 ipo_normalize: str = "tokens", seed: int = 0, accelerator=None):
        super().__init__(model, tokenizer, config, output_dir, seed=seed, accelerator=accelerator)
        self.beta, self.loss_type, self.label_smoothing = beta, loss_type, label_smoothing
        self.ipo_normalize = ipo_normalize
        self.sft_weight = sft_weight  # RPO: + sft_weight * per-token NLL of the chosen response
        self.ref_model = ref_model

    # ---- override points ---------------------------------------------------------------
    def collate(self, examples: list[PairExample]) -> dict[str, torch.Tensor]:
        return collate_pairs(examples, self.tokenizer.pad_token_id)

    def sequence_logps(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed log-probabilities of the completion tokens of every row: [2B]."""
        completion = batch["completion_mask"][:, 1:]
        logps = logprobs_from_model(model, batch["input_ids"], attention_mask=batch["attention_mask"],
                                    use_cache=False, mask=completion).logps  # [2B, T-1], completion tokens only
        return (logps * completion).sum(-1)

    def compute_loss(self, model, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """DPO loss of one micro-batch: policy log-probs here, reference ones from the batch."""
        chosen, rejected = self.sequence_logps(model, batch).chunk(2)
        if "ref_chosen" in batch:
            ref_chosen, ref_rejected = batch["ref_chosen"], batch["ref_rejected"]
        else:
            ref_chosen, ref_rejected = self.reference_logps(batch).chunk(2)
        chosen_tokens, rejected_tokens = batch["completion_mask"][:, 1:].sum(-1).chunk(2)  # chosen rows come first
        loss, stats = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=self.beta,
                               loss_type=self.loss_type, label_smoothing=self.label_smoothing,
                               strength=batch["strength"], ipo_normalize=self.ipo_normalize,
                               chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens)
        extra = {}
        if self.sft_weight > 0:
            nll = chosen_nll(chosen, chosen_tokens)
            loss = loss + self.sft_weight * nll
            extra["nll_chosen"] = nll.item()
        return loss, {**extra,"rewards/chosen": stats["chosen_rewards"].mean().item(),
                      "rewards/rejected": stats["rejected_rewards"].mean().item(),
                      "rewards/accuracy": stats["accuracy"].mean().item(),
                      "rewards/margin": (stats["chosen_rewards"] - stats["rejected_rewards"]).mean().item()}

    # ---- reference ---------------------------------------------------------------------
    @torch.no_grad()
    def reference_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reference log-probs [2B]: `ref_model` if given, else the model with its adapter disabled
        (LoRA) or the model itself (only meaningful before any update: `precompute_reference`)."""
        model = self.ref_model if self.ref_model is not None else self.model
        was_training = model.training
        model.eval()
        ctx = contextlib.nullcontext() if self.ref_model is not None else reference_context(
            self.accelerator.unwrap_model(model))
        with ctx:
            out = self.sequence_logps(model, batch)
        model.train(was_training)
        return out.float()

    def precompute_reference(self, examples: list[PairExample], batch_size: int | None = None) -> None:
        """Fill ref_chosen/ref_rejected of every example, once, before training starts."""
        device = self.accelerator.device
        if self.ref_model is None:
            self.model.to(device)
        else:
            self.ref_model.to(device)
        bs = batch_size or 2 * self.config.batch_size
        # in length order, so a batch pads little (world pairs run 20-250 tokens: in the given order about
        # half of every batch was padding); an example's log-probs do not depend on its batch-mates (up to rounding)
        by_length = sorted(examples, key=example_length)
        for start in range(0, len(by_length), bs):
            chunk = by_length[start : start + bs]
            batch = {k: v.to(device) for k, v in self.collate(chunk).items()}
            ref_c, ref_r = self.reference_logps(batch).cpu().chunk(2)
            for e, c, r in zip(chunk, ref_c.tolist(), ref_r.tolist()):
                e.ref_chosen, e.ref_rejected = c, r
