"""Reward-model losses (SPEC.md section 2): masked MSE and the Bradley-Terry variants.

Pure functions over tensors; the trainer only gathers model outputs and calls these.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MISSING_LABEL = -100.0  # NeMo-Aligner's marker for a missing attribute label


def masked_mse(pred: torch.Tensor, labels: torch.Tensor, missing: float = MISSING_LABEL) -> torch.Tensor:
    """MSE over the labels present, averaged over valid (row, attribute) entries (SPEC.md 2).

    pred, labels: [B, A]; labels == `missing` are ignored. Returns a scalar (0 if none valid,
    still connected to the graph so backward works).
    """
    valid = labels.ne(missing)  # [B, A]
    sq = (pred.float() - labels.float()).pow(2) * valid  # [B, A]
    return sq.sum() / valid.sum().clamp_min(1)


def bt_regular(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: mean of -log sigmoid(r_c - r_r). chosen, rejected: [B] -> scalar."""
    return -F.logsigmoid(chosen.float() - rejected.float()).mean()


def bt_margin(chosen: torch.Tensor, rejected: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """BT with margin (HelpSteer2-Preference): mean of -log sigmoid(r_c - r_r - m), m = strength [B]."""
    return -F.logsigmoid(chosen.float() - rejected.float() - strength.float()).mean()


def bt_scaled(chosen: torch.Tensor, rejected: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Scaled BT (HelpSteer2-Preference's best): mean of -m * log sigmoid(r_c - r_r), m = strength [B]."""
    return -(strength.float() * F.logsigmoid(chosen.float() - rejected.float())).mean()


def bradley_terry_loss(variant: str, chosen: torch.Tensor, rejected: torch.Tensor,
                       strength: torch.Tensor) -> torch.Tensor:
    """Dispatch on `variant` in {'regular', 'margin', 'scaled'}."""
    if variant == "regular":
        return bt_regular(chosen, rejected)
    if variant == "margin":
        return bt_margin(chosen, rejected, strength)
    if variant == "scaled":
        return bt_scaled(chosen, rejected, strength)
    raise ValueError(f"unknown Bradley-Terry variant {variant!r} (regular, margin, scaled)")
