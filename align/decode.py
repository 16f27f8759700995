"""A decode loop that drops finished rows from the batch and the KV cache.

`transformers.generate` keeps computing every row of a batch until its longest response
ends; with responses of very different lengths most of that work is padding. Here each
step runs only the rows still generating: when a row emits EOS it leaves the batch and
its slice of the KV cache is dropped (`Cache.batch_select_indices`). Greedy decoding
gives the same tokens as `generate`; sampling uses temperature and nucleus (top-p) with
its own seeded generator.
"""
from __future__ import annotations

import torch


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None):
    """logits [k, V] -> next token ids [k]: argmax when temperature is 0, else top-p sampling."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        # The nucleus almost always lies in the top few dozen tokens: sort those, not the vocabulary.
        sorted_p, order = probs.topk(min(64, probs.shape[-1]), dim=-1)
        if not bool((sorted_p.sum(-1) >= top_p).all()):
            sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        pick = torch.multinomial(sorted_p.cpu(), 1, generator=generator).to(order.device)
        return order.gather(-1, pick).squeeze(-1)
    choice = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1)
    return choice.to(logits.device)


@torch.no_grad()
def decode_compacting(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
                      eos_ids: list[int], temperature: float = 0.0, top_p: float = 1.0,
                      generator: torch.Generator | None = None) -> list[list[int]]:
    """New tokens for each left-padded row of `input_ids` [B, P] (EOS included when emitted)."""
    device = input_ids.device
    eos = torch.tensor(sorted(set(eos_ids)), device=device)
    positions = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    cache, logits = out.past_key_values, out.logits[:, -1]
    if not hasattr(cache, "batch_select_indices"):
        raise TypeError("model cache cannot drop rows")
    rows = torch.arange(input_ids.shape[0], device=device)  # original row of each live row
    mask = attention_mask
    results: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    for step in range(max_new_tokens):
        tokens = sample_next(logits, temperature, top_p, generator)
        for row, tok in zip(rows.tolist(), tokens.tolist()):
            results[row].append(tok)
        live = ~torch.isin(tokens, eos)
        if step == max_new_tokens - 1 or not bool(live.any()):
            break
        if not bool(live.all()):
            keep = live.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, tokens, mask = rows[keep], tokens[keep], mask[keep]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
        out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=mask.sum(-1, keepdim=True) - 1,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache, logits = out.past_key_values, out.logits[:, -1]
    return results
