"""DPO-family losses on summed sequence log-probabilities (SPEC.md section 5).

DPO (Rafailov et al. 2023): with h = beta * [(log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r))],
  sigmoid:  -(1 - eps) log s(h) - eps log s(-h)        (eps = label smoothing, cDPO)
  ipo:      (d - 1/(2 beta))^2                          (Azar et al. 2023), d the log-ratio difference,
            by default of per-token means: d = (pi_c - ref_c)/|y_c| - (pi_r - ref_r)/|y_r| (ipo_normalize
            "tokens", TRL's form, which the IPO authors confirmed is the one their results use; with sums,
            "sum", d grows with response length and beta means something different at every length)
Preference strength m (HelpSteer2-Preference, |preference_strength| or the rating gap),
as for the Bradley-Terry reward model in SPEC.md section 2:
  margin:   -log s(h - m)
  scaled:   -m log s(h)
All functions are per pair, then averaged over the batch.

RPO (Pang et al. 2024, "Iterative Reasoning Preference Optimization"; TRL's `rpo_alpha`) adds
alpha * NLL(y_c) / |y_c|, the chosen response's per-token negative log-likelihood: DPO alone can
lower the chosen response's likelihood along with the rejected one's (likelihood displacement),
which on a small model trained off-policy ends in degenerate text; the NLL term anchors it.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

DPOLossType = Literal["sigmoid", "ipo", "margin", "scaled"]


def preference_logits(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                      ref_chosen: torch.Tensor, ref_rejected: torch.Tensor) -> torch.Tensor:
    """Difference of log-ratios (unscaled): [(pi_c - ref_c) - (pi_r - ref_r)]. All inputs [B] -> [B]."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, *,
             beta: float = 0.1, loss_type: DPOLossType = "sigmoid", label_smoothing: float = 0.0,
             strength: torch.Tensor | None = None, ipo_normalize: Literal["tokens", "sum"] = "tokens",
             chosen_tokens: torch.Tensor | None = None, rejected_tokens: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean DPO-family loss over the batch, plus detached stats.

    Inputs are summed completion log-probabilities, each [B]; `strength` [B] (>= 0) is
    required by the margin and scaled variants, the completion token counts [B] by ipo with
    ipo_normalize "tokens". Label smoothing exists for sigmoid only (cDPO). Returns (loss [],
    stats) where stats has per-pair `chosen_rewards`, `rejected_rewards` (beta * log-ratio) and
    `accuracy`.
    """
    if label_smoothing and loss_type != "sigmoid":
        raise ValueError(f"label_smoothing applies to the sigmoid loss only (cDPO), not {loss_type!r}")
    logits = preference_logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected)  # [B]
    h = beta * logits
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)
    elif loss_type == "ipo":
        if ipo_normalize == "tokens":
            if chosen_tokens is None or rejected_tokens is None:
                raise ValueError("ipo with ipo_normalize 'tokens' needs the completion token counts")
            logits = ((policy_chosen - ref_chosen) / chosen_tokens.clamp_min(1).to(logits)
                      - (policy_rejected - ref_rejected) / rejected_tokens.clamp_min(1).to(logits))
        elif ipo_normalize != "sum":
            raise ValueError(f"unknown ipo_normalize {ipo_normalize!r} (tokens or sum)")
        losses = (logits - 1 / (2 * beta)) ** 2
    elif loss_type in ("margin", "scaled"):
        if strength is None:
            raise ValueError(f"loss_type {loss_type!r} needs the preference strength of each pair")
        strength = strength.to(h)
        if loss_type == "margin":
            losses = -F.logsigmoid(h - strength)
        else:
            losses = -strength * F.logsigmoid(h)
    else:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}")
    chosen_rewards = (beta * (policy_chosen - ref_chosen)).detach()
    rejected_rewards = (beta * (policy_rejected - ref_rejected)).detach()
    stats = {"chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards,
             "accuracy": (chosen_rewards > rejected_rewards).float()}
    return losses.mean(), stats


def chosen_nll(policy_chosen: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of the chosen response's per-token NLL: -log pi(y_c) / |y_c|. Inputs [B] -> []."""
    return (-policy_chosen / chosen_tokens.clamp_min(1).to(policy_chosen)).mean()
