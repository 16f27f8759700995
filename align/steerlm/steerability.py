"""Steerability: ask for a grid of attribute vectors, measure how close the answers land.

For every target a in the grid and prompt x, the model answers with the attribute prefix
of a (greedy by default, or sampled: SteerLM 2.0 fits the sampling distribution, and its
gains can show there before they move the greedy answer); the achieved attributes are read by the world oracle (the gold
judge, when the prompts are world prompts) and by the reward model (always available).
Error = mean |requested - achieved| over (target, prompt) per attribute named by targets.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from align.steerlm.labels import DEFAULT_MARKER, attribute_prefix

log = logging.getLogger("align")


def absolute_errors(requested: Sequence[Mapping[str, int]], achieved: Sequence[Mapping[str, float] | None]
                    ) -> dict[str, float]:
    """Per-attribute mean |requested - achieved| over rows with an achieved value; plus 'mae_mean'.

    requested[i] names the attributes of row i; achieved[i] is None when unscorable (skipped).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for req, got in zip(requested, achieved):
        if got is None:
            continue
        for name, value in req.items():
            sums[name] = sums.get(name, 0.0) + abs(float(value) - float(got[name]))
            counts[name] = counts.get(name, 0) + 1
    out = {name: sums[name] / counts[name] for name in sums}
    if out:
        out["mae_mean"] = sum(out.values()) / len(out)
    return out


def generate_for_targets(model, tokenizer, prompts: list[list[dict]], targets: list[Mapping[str, int]], sampling, *,
                         marker: str = DEFAULT_MARKER, seed: int = 0) -> list[list[list[str]]]:
    """responses[t][p] = the sampled responses to prompt p under target t (one generate call per target)."""
    from align.generation import generate

    return [generate(model, tokenizer, prompts, sampling, seed=seed + t,
                     prompt_suffix=attribute_prefix(target, marker)) for t, target in enumerate(targets)]


def measure_steerability(model, tokenizer, prompts: list[list[dict]], targets: list[Mapping[str, int]], *,
                         max_new_tokens: int = 48, batch_size: int = 64, marker: str = DEFAULT_MARKER,
                         scorer=None, use_oracle: bool = True, seed: int = 0, temperature: float = 0.0,
                         top_p: float = 1.0, samples: int = 1) -> dict[str, float]:
    """{'steer/mae/<attr>', 'steer/mae_mean'} from the oracle and {'steer_rm/...'} from `scorer`.

    Greedy answers by default (temperature 0); with a temperature, `samples` answers per
    (target, prompt), all counted. Oracle figures appear only when `use_oracle` and the
    oracle understands the prompts.
    """
    from align.data import flatten_messages
    from align.generation import SamplingConfig

    sampling = SamplingConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=temperature,
                              top_p=top_p, n=samples if temperature > 0 else 1)
    responses = generate_for_targets(model, tokenizer, prompts, targets, sampling, marker=marker, seed=seed)
    req = [t for t, per_target in zip(targets, responses) for r in per_target for _ in r]
    flat_resp = [x for per_target in responses for r in per_target for x in r]
    all_prompts = [p for per_target in responses for p, r in zip(prompts, per_target) for _ in r]
    out: dict[str, float] = {}
    if use_oracle:
        from align.world.oracle import annotate

        achieved = [annotate(flatten_messages(p), r) for p, r in zip(all_prompts, flat_resp)]
        coverage = sum(a is not None for a in achieved) / max(len(achieved), 1)
        if coverage > 0:
            out.update({f"steer/mae/{k}" if k != "mae_mean" else "steer/mae_mean": v
                        for k, v in absolute_errors(req, achieved).items()})
            out["steer/coverage"] = coverage
    if scorer is not None:
        pred = scorer.predict(all_prompts, flat_resp).clamp(0, 4)  # [N, A]
        rows = [dict(zip(scorer.attributes, map(float, row))) for row in pred]
        out.update({f"steer_rm/mae/{k}" if k != "mae_mean" else "steer_rm/mae_mean": v
                    for k, v in absolute_errors(req, rows).items()})
    return out


def with_suffix(metrics: Mapping[str, float], suffix: str) -> dict[str, float]:
    """{'steer/mae_mean': x} -> {'steer/mae_mean/iter0': x}."""
    return {f"{k}/{suffix}": v for k, v in metrics.items()}
