"""Attribute-conditioned generation: the Python API behind `align generate`."""
from __future__ import annotations

from collections.abc import Mapping

from align.steerlm.labels import DEFAULT_MARKER, attribute_prefix


def steered_generate(model, tokenizer, prompts: list[list[dict]], target: Mapping[str, int] | None, sampling=None, *,
                     marker: str = DEFAULT_MARKER, seed: int | None = None) -> list[list[str]]:
    """n responses per chat prompt at the attribute vector `target` (None: unconditioned).

    Batched, left-padded, KV cache (align.generation.generate); the label prefix is appended
    after the chat template's generation prompt, where SteerLM 1.0/2.0 were trained to see it.
    """
    from align.generation import generate

    suffix = attribute_prefix(target, marker) if target else ""
    return generate(model, tokenizer, prompts, sampling, seed=seed, prompt_suffix=suffix)
