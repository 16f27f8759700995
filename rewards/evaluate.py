"""Score a reward model on held-out data: per-attribute Pearson/MAE and pairwise accuracy."""
from __future__ import annotations

import torch

from rewards.metrics import attribute_metrics, pairwise_accuracy
from rewards.presets import resolve_weights


def regression_metrics(scorer, rows, prefix: str = "eval") -> dict[str, float]:
    """Pearson and MAE per attribute of `scorer` on HelpSteerRows (missing labels skipped)."""
    if not rows:
        return {}
    pred = scorer.predict([r.messages for r in rows], [r.response for r in rows])  # [N, A]
    labels = torch.tensor([[-100.0 if r.attributes.get(a) is None else float(r.attributes[a])
                            for a in scorer.attributes] for r in rows])  # [N, A]
    return attribute_metrics(pred, labels, scorer.attributes, prefix=prefix)


def pair_scores(scorer, pairs, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar scores (chosen [N], rejected [N]) of preference pairs."""
    w = resolve_weights(weights, scorer.attributes)
    prompts = [p.messages for p in pairs]
    chosen = scorer.predict(prompts, [p.chosen for p in pairs]) @ w
    rejected = scorer.predict(prompts, [p.rejected for p in pairs]) @ w
    return chosen, rejected


def pair_metrics(scorer, pairs, weights, prefix: str = "eval") -> dict[str, float]:
    """`{prefix}/pairwise_accuracy` (chosen strictly above rejected) and the pair count."""
    if not pairs:
        return {}
    chosen, rejected = pair_scores(scorer, pairs, weights)
    return {f"{prefix}/pairwise_accuracy": pairwise_accuracy(chosen, rejected),
            f"{prefix}/pairs": float(len(pairs))}
