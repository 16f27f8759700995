"""The sampling interface every sampling path goes through (DESIGN.md: one interface, interchangeable engines).

An engine takes chat prompts and returns, per prompt, `n` lists of new token ids (the EOS
included when the row emitted one), so trainers never re-tokenise text. Every engine renders
prompts with the tokenizer's chat template exactly as `align.generation.generate_tokens` does
(generation prompt, then `prompt_suffix`), tokenises them with the same tokenizer and stops at
the same tokens (`align.generation.stop_token_ids`).

- `native`: the project's decode loop (`align.decode.decode_compacting`) on the trainer's model;
- `hf`: batched `transformers.generate` on the trainer's model;
- `vllm`: a vLLM engine started once per stage from a copy of the model; `sync_weights(model)`
  pushes the trainer's current weights into it in place after each optimisation phase.

Sampling is seeded: for a given engine and seed the same prompts give the same tokens.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger("align")

EngineName = Literal["native", "hf", "vllm"]
ENGINES = ("native", "hf", "vllm")
ENGINE_HELP = ("Sampling engine: native (the project's decode loop, the CPU default), hf (transformers.generate) "
               "or vllm (a vLLM engine started once per stage, weights synced in place; `make install-vllm`).")


@dataclass
class Generation:
    """What an engine returns: per prompt, n rows of new token ids; per row, the engine's own log-prob of
    each sampled token (`logprobs`, only when asked and the engine computes them, else None)."""

    tokens: list[list[list[int]]]
    logprobs: list[list[list[float]]] | None = None
    seconds: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)


def encode_prompts(tokenizer, prompts: list[list[dict]], prompt_suffix: str | list[str] = "") -> list[list[int]]:
    """Token ids of each chat prompt: the chat template with the generation prompt, then `prompt_suffix`
    (as `align.generation.generate_tokens` and `align.rollouts.sample_responses` render them)."""
    from align.chat import render_prompts

    texts = render_prompts(tokenizer, prompts, prompt_suffix)
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def cut_at_stop(row: list[int], stop_ids) -> list[int]:
    """The row up to and including its first stop token (everything after it is padding)."""
    stop = set(stop_ids)
    for k, t in enumerate(row):
        if t in stop:
            return row[: k + 1]
    return row


class SamplingEngine:
    """Generate token ids for chat prompts. Subclasses implement `generate`; `sync_weights` and `close`
    matter only for engines that hold their own copy of the weights (vllm)."""

    name: str = "base"
    #: whether `generate(..., logprobs=True)` returns the engine's log-probs
    returns_logprobs: bool = False

    def __init__(self, model, tokenizer):
        from align.generation import stop_token_ids

        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = stop_token_ids(model, tokenizer)

    def generate(self, prompts: list[list[dict]], sampling=None, *, seed: int | None = None,
                 prompt_suffix: str = "", logprobs: bool = False) -> Generation:
        """Per prompt, `sampling.n` rows of new token ids (`align.generation.SamplingConfig`; temperature 0:
        greedy). Rows end at the first stop token, which they include, or at max_new_tokens."""
        raise NotImplementedError

    def generate_text(self, prompts, sampling=None, *, seed: int | None = None, prompt_suffix: str = "") -> list[list[str]]:
        """`generate` decoded like `align.generation.generate`: special tokens removed, stripped."""
        rows = self.generate(prompts, sampling, seed=seed, prompt_suffix=prompt_suffix).tokens
        return [[t.strip() for t in self.tokenizer.batch_decode(r, skip_special_tokens=True)] for r in rows]

    def sync_weights(self, model) -> float:
        """Make the engine sample from `model`'s current weights; return the seconds it took.
        In-process engines (native, hf) sample from the model object itself: nothing to copy."""
        self.model = model
        return 0.0

    def close(self) -> None:
        """Release what the engine holds (processes, memory, its start-up copy of the model)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
