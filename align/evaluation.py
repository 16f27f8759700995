"""Held-out evaluation shared by the trainers: greedy answers scored by the world oracle."""
from __future__ import annotations

import logging

from align.attributes import ATTRIBUTES

log = logging.getLogger("align")


def oracle_eval(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int,
                prompt_suffix: str = "") -> dict[str, float]:
    """Mean oracle attributes of greedy answers, plus the fraction of prompts the oracle understood."""
    from align.data import flatten_messages
    from align.generation import SamplingConfig, generate
    from align.world.oracle import OracleJudge

    answers = generate(model, tokenizer, prompts, SamplingConfig(max_new_tokens=max_new_tokens, batch_size=batch_size),
                       prompt_suffix=prompt_suffix)
    flat = [flatten_messages(p) for p in prompts]
    means = OracleJudge().mean_attributes(flat, [a[0] for a in answers])
    return {k: float(v) for k, v in means.items()}


def oracle_metrics(scores: dict[str, float], when: str) -> dict[str, float]:
    """{'helpfulness': 2.1, ...} -> {'oracle/helpfulness/before': 2.1, ...}."""
    out = {f"oracle/{a}/{when}": scores[a] for a in ATTRIBUTES if a in scores}
    if "coverage" in scores:
        out[f"oracle/coverage/{when}"] = scores["coverage"]
    return out
