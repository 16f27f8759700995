"""Reward-model evaluation figures: per-attribute Pearson and MAE, pairwise accuracy."""
from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger("align")


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two [N] vectors (nan when either is constant)."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.pow(2).sum() * y.pow(2).sum()).sqrt()
    return float((x * y).sum() / denom) if denom > 0 else math.nan


def attribute_metrics(pred: torch.Tensor, labels: torch.Tensor, attributes: list[str],
                      missing: float = -100.0, prefix: str = "eval") -> dict[str, float]:
    """`{prefix}/pearson/<attr>` and `{prefix}/mae/<attr>` over the rows where that label is present.

    pred, labels: [N, A].
    """
    out = {}
    for j, name in enumerate(attributes):
        valid = labels[:, j].ne(missing)
        if valid.sum() < 2:
            continue
        p, t = pred[valid, j], labels[valid, j]
        if t.unique().numel() == 1:  # undefined by the data, not a fault of the model: left out
            log.warning("%s/pearson/%s left out: every label is %g", prefix, name, float(t[0]))
        else:  # constant (or non-finite) predictions give nan: a collapsed model, which fails the stage
            out[f"{prefix}/pearson/{name}"] = pearson(p, t)
        out[f"{prefix}/mae/{name}"] = float((p.double() - t.double()).abs().mean())
    return out


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Fraction of pairs with score(chosen) strictly above score(rejected); ties count as wrong. [N] -> float."""
    if chosen.numel() == 0:
        return math.nan
    return float((chosen > rejected).double().mean())
