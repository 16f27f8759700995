"""In-process engines on the trainer's own model: the project's decode loop and `transformers.generate`."""
from __future__ import annotations

import dataclasses
import time

from align.engines.base import Generation, SamplingEngine, cut_at_stop, encode_prompts


class NativeEngine(SamplingEngine):
    """`align.generation.generate_tokens` with the compacting decode loop (align/decode.py): the CPU default."""

    name = "native"

    def generate(self, prompts, sampling=None, *, seed=None, prompt_suffix="", logprobs=False) -> Generation:
        from align.generation import SamplingConfig, generate_tokens

        s = dataclasses.replace(sampling or SamplingConfig(), compact=True)
        t0 = time.perf_counter()
        rows = generate_tokens(self.model, self.tokenizer, prompts, s, seed=seed, prompt_suffix=prompt_suffix)
        return Generation([[cut_at_stop(r, self.stop_ids) for r in rs] for rs in rows],
                          seconds=time.perf_counter() - t0)


class HFEngine(SamplingEngine):
    """Batched `transformers.generate` (left padding, KV cache), prompts sorted by length.

    Sampling is plain temperature / top-p (top_k off, as in the native loop and vLLM), seeded
    through torch's global generator inside a forked RNG state."""

    name = "hf"

    def generate(self, prompts, sampling=None, *, seed=None, prompt_suffix="", logprobs=False) -> Generation:
        import torch

        from align.chat import pad_with_mask
        from align.generation import SamplingConfig

        s = sampling or SamplingConfig()
        tok, model = self.tokenizer, self.model
        device = next(model.parameters()).device
        encoded = encode_prompts(tok, prompts, prompt_suffix)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        kwargs = dict(max_new_tokens=s.max_new_tokens, num_return_sequences=s.n, pad_token_id=tok.pad_token_id,
                      eos_token_id=self.stop_ids)
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out: list[list[list[int]]] = [[] for _ in prompts]
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]), torch.no_grad():
                if seed is not None:
                    torch.manual_seed(seed)
                for start in range(0, len(order), s.batch_size):
                    batch = order[start : start + s.batch_size]
                    ids, mask = pad_with_mask([encoded[i] for i in batch], tok.pad_token_id, left=True)
                    seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
                    for row, new in enumerate(seqs[:, ids.shape[1]:].tolist()):
                        out[batch[row // s.n]].append(cut_at_stop(new, self.stop_ids))
        finally:
            model.train(was_training)
        return Generation(out, seconds=time.perf_counter() - t0)
