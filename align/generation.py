"""Batched sampling with the KV cache, prompts rendered by the chat template.

Rows that finish leave the batch (align/decode.py); models whose cache cannot drop rows
fall back to `transformers.generate`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from align.chat import pad_with_mask, render_prompts
from align.decode import decode_compacting


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a response: the tokenizer's eos and the model's generation eos."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([gen_eos] if isinstance(gen_eos, int) else list(gen_eos or []))
    return sorted(ids)


def split_at_eos(ids: list[int], eos_ids) -> tuple[list[int], bool]:
    """(the tokens before the first EOS, whether there was one): an answer that ended on its own,
    or one cut by its token budget."""
    eos = set(eos_ids)
    end = next((k for k, t in enumerate(ids) if t in eos), None)
    return (ids, False) if end is None else (ids[:end], True)


@dataclass
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    n: int = 1
    batch_size: int = 32
    compact: bool = True  # drop finished rows each step (False: transformers.generate)


def generate(model, tokenizer, prompts: list[list[dict]], sampling: SamplingConfig | None = None,
             *, seed: int | None = None, prompt_suffix: str = "") -> list[list[str]]:
    """For each chat prompt, `n` sampled responses (text, special tokens removed).

    Prompts are sorted by length and batched with left padding, so each batch shares the
    KV cache efficiently; results come back in the input order. `prompt_suffix` is text
    appended after the generation prompt (SteerLM puts the attribute string there).
    """
    rows = generate_tokens(model, tokenizer, prompts, sampling, seed=seed, prompt_suffix=prompt_suffix)
    return [[text.strip() for text in tokenizer.batch_decode(choices, skip_special_tokens=True)] for choices in rows]


def generate_tokens(model, tokenizer, prompts: list[list[dict]], sampling: SamplingConfig | None = None,
                    *, seed: int | None = None, prompt_suffix: str | list[str] = "",
                    stop_prompt: Callable[[int], bool] | None = None) -> list[list[list[int]]]:
    """`generate` as token ids: for each prompt, `n` lists of new tokens (an EOS, when the row
    emitted one, included), so callers can count tokens and tell a finished answer from a cut one.
    `stop_prompt(i)` true ends prompt i's rows early (the decode loop asks after every step)."""
    import torch

    s = sampling or SamplingConfig()
    device = next(model.parameters()).device
    texts = render_prompts(tokenizer, prompts, prompt_suffix)
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[list[list[int]]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    gen_kwargs = dict(max_new_tokens=s.max_new_tokens, num_return_sequences=s.n, pad_token_id=tokenizer.pad_token_id)
    if s.temperature > 0:
        gen_kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
    else:
        gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    eos_ids = stop_token_ids(model, tokenizer)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    compact = s.compact
    try:
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(order), s.batch_size):
                batch = order[start : start + s.batch_size]
                ids, mask = pad_with_mask([encoded[i] for i in batch], tokenizer.pad_token_id, left=True)
                ids, mask = ids.to(device), mask.to(device)
                new_rows = None
                if compact:
                    try:
                        stop_row = (None if stop_prompt is None else
                                    lambda row, batch=batch: stop_prompt(batch[row // s.n]))
                        new_rows = decode_compacting(
                            model, ids.repeat_interleave(s.n, 0), mask.repeat_interleave(s.n, 0),
                            max_new_tokens=s.max_new_tokens, eos_ids=eos_ids, temperature=s.temperature,
                            top_p=s.top_p, generator=generator, stop_row=stop_row)
                    except TypeError:
                        compact = False  # this model's cache cannot drop rows
                if new_rows is None:
                    with torch.no_grad():
                        seqs = model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
                    new_rows = seqs[:, ids.shape[1]:].tolist()
                for row, new in enumerate(new_rows):
                    out[batch[row // s.n]].append(list(new))
    finally:
        model.train(was_training)
    return out
