"""Sampling rollouts for training: one response per prompt with the masks a trainer needs.

Used by PPO's rollout phase and by the DPO and PPO stages' sampled-response metrics; lives
with generation rather than in one trainer so that no stage imports another's trainer.
"""
from __future__ import annotations

from typing import Any

import torch

from align.chat import pad_with_mask, render
from align.errors import TrainingError


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding."""
    return (attention_mask.cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, temperature: float = 1.0,
                     top_p: float = 1.0, seed: int = 0) -> tuple[dict[str, Any], list[str], torch.Tensor]:
    """One sampled response per chat prompt, batched with left padding and the KV cache.

    Returns (batch, texts, has_eos): batch has prompt_len, input_ids [B, P+R], attention_mask,
    response_mask [B, R] (1 up to and including the first EOS); texts are decoded and stripped.
    """
    tok = tokenizer
    device = next(model.parameters()).device
    encoded = [tok(render(tok, p, add_generation_prompt=True), add_special_tokens=False)["input_ids"] for p in prompts]
    ids, attn = pad_with_mask(encoded, tok.pad_token_id, left=True)
    P = ids.shape[1]
    ids, attn = ids.to(device), attn.to(device)
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        seqs = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, temperature=temperature,
                              top_p=top_p, top_k=0, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id)
    model.train(was_training)
    response = seqs[:, P:]
    if response.shape[1] == 0:
        raise TrainingError("generation returned no tokens")
    is_eos = response.eq(tok.eos_token_id)
    has_eos = is_eos.any(1)
    no_eos = torch.full_like(has_eos, response.shape[1], dtype=torch.long)
    first = torch.where(has_eos, is_eos.long().argmax(1), no_eos)
    pos = torch.arange(response.shape[1], device=device)[None]
    response_mask = (pos <= first[:, None]).long()  # includes the EOS itself
    response = torch.where(response_mask.bool(), response, torch.full_like(response, tok.pad_token_id))
    batch = {"prompt_len": P, "input_ids": torch.cat([ids, response], 1),
             "attention_mask": torch.cat([attn, response_mask], 1), "response_mask": response_mask.float()}
    texts = [t.strip() for t in tok.batch_decode(response, skip_special_tokens=True)]
    return batch, texts, has_eos
