"""Sampling rollouts for training: one response per prompt with the masks a trainer needs.

Used by PPO's rollout phase and by the DPO and PPO stages' sampled-response metrics; lives
with generation rather than in one trainer so that no stage imports another's trainer.
"""
from __future__ import annotations

from typing import Any

import torch

from align.chat import pad_with_mask, render_prompts
from align.errors import TrainingError


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding."""
    return (attention_mask.cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, temperature: float = 1.0,
                     top_p: float = 1.0, seed: int = 0, engine=None,
                     prompt_suffix: str | list[str] = "") -> tuple[dict[str, Any], list[str], torch.Tensor]:
    """One sampled response per chat prompt, batched with left padding and the KV cache.

    Returns (batch, texts, has_eos): batch has prompt_len, input_ids [B, P+R], attention_mask,
    response_mask [B, R] (1 up to and including the first EOS); texts are decoded and stripped.
    `prompt_suffix` follows each prompt's generation prompt (one for all, or one per prompt: a
    SteerLM attribute prefix per target); it is part of the prompt tokens, not of the response.
    `engine` (an `align.engines.SamplingEngine`): sample with it instead of `model.generate`; the
    batch is built from the token ids it returns (never from re-tokenised text), and holds the
    engine's own per-token log-probs as `engine_logps` [B, R] when it returns them.
    """
    if engine is not None:
        return _engine_responses(engine, model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                 temperature=temperature, top_p=top_p, seed=seed, prompt_suffix=prompt_suffix)
    tok = tokenizer
    device = next(model.parameters()).device
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in render_prompts(tok, prompts, prompt_suffix)]
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


def _engine_responses(engine, model, tokenizer, prompts, *, max_new_tokens, temperature, top_p, seed,
                      prompt_suffix: str | list[str] = ""):
    """`sample_responses` through a sampling engine: the same prompt ids, the same batch layout."""
    from align.engines import encode_prompts
    from align.generation import SamplingConfig

    tok = tokenizer
    device = next(model.parameters()).device
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=1,
                              batch_size=max(1, len(prompts)))
    out = engine.generate(prompts, sampling, seed=seed, logprobs=engine.returns_logprobs, prompt_suffix=prompt_suffix)
    rows = [r[0] for r in out.tokens]
    if not any(rows):
        raise TrainingError("generation returned no tokens")
    ids, attn = pad_with_mask(encode_prompts(tok, prompts, prompt_suffix), tok.pad_token_id, left=True)
    P, R = ids.shape[1], max(len(r) for r in rows)
    response = torch.full((len(rows), R), tok.pad_token_id, dtype=torch.long)
    response_mask = torch.zeros(len(rows), R, dtype=torch.long)
    stop = set(engine.stop_ids)
    has_eos = torch.tensor([bool(r) and r[-1] in stop for r in rows])
    for i, r in enumerate(rows):  # each row ends at its first stop token (included) or at max_new_tokens
        response[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        response_mask[i, : len(r)] = 1
    batch = {"prompt_len": P, "input_ids": torch.cat([ids, response], 1).to(device),
             "attention_mask": torch.cat([attn, response_mask], 1).to(device),
             "response_mask": response_mask.float().to(device)}
    if out.logprobs is not None:
        lp = torch.zeros(len(rows), R)
        for i, row in enumerate(out.logprobs):
            lp[i, : len(row[0])] = torch.tensor(row[0])
        batch["engine_logps"] = lp.to(device)
    texts = [t.strip() for t in tok.batch_decode(response, skip_special_tokens=True)]
    return batch, texts, has_eos.to(device)
