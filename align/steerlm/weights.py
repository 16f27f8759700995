"""SteerLM 2.0 importance weights, baseline and loss (SPEC.md section 4; HelpSteer2 paper
section 4.5). All inputs are per-sample log-probabilities of whole responses, grouped by
(prompt, target): shape [G, n] = G groups of the n samples drawn for one (x, a).
"""
from __future__ import annotations

import torch


def log_normalized_weights(log_p_attr: torch.Tensor, log_p_ref: torch.Tensor, log_q_prop: torch.Tensor) -> torch.Tensor:
    """log w'_i: log_softmax(log P(a|x,y) + log P(y|x) - log Q'(y|a,x)); [G, n] -> [G, n]."""
    return torch.log_softmax(log_p_attr + log_p_ref - log_q_prop, dim=-1)


def normalized_weights(log_p_attr: torch.Tensor, log_p_ref: torch.Tensor, log_q_prop: torch.Tensor) -> torch.Tensor:
    """Self-normalised importance weights w'_i = w_i / sum_j w_j, in log space.

    w_i = P(a|x,y_i) P(y_i|x) / Q'(y_i|a,x), so w' = softmax(log P(a|x,y) + log P(y|x) - log Q'(y|a,x)).
    Shapes: each input [G, n] (or [n]); returns [G, n], rows sum to 1.
    """
    return log_normalized_weights(log_p_attr, log_p_ref, log_q_prop).exp()


def log_normalized_baseline(log_q_theta: torch.Tensor, log_q_prop: torch.Tensor) -> torch.Tensor:
    """log b'_i: log_softmax(log Q_theta(y|a,x) - log Q'(y|a,x)), Q_theta detached; [G, n] -> [G, n]."""
    return torch.log_softmax(log_q_theta.detach() - log_q_prop, dim=-1)


def normalized_baseline(log_q_theta: torch.Tensor, log_q_prop: torch.Tensor) -> torch.Tensor:
    """Baseline b'_i = b_i / sum_j b_j with b_i = Q_theta(y_i|a,x) / Q'(y_i|a,x), Q_theta detached.

    Shapes: [G, n] -> [G, n]; equals 1/n when Q_theta = Q' (the first step of an iteration).
    """
    return log_normalized_baseline(log_q_theta, log_q_prop).exp()


def steerlm2_loss(nll: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                  tokens: torch.Tensor | None = None) -> torch.Tensor:
    """sum_i (w'_i - b'_i) * NLL_i per group, averaged over groups; weights detached.

    Its gradient is -sum_i (w'_i - b'_i) grad log Q_theta(y_i|a,x) (NLL_i = -log Q_theta(y_i|a,x),
    the summed token NLL of response i). `tokens` [G, n] (response token counts): if given,
    each group's loss is divided by the group's mean response length, as NeMo-Aligner does
    (a per-group scale, not a change of direction).
    nll, w, b: [G, n] -> scalar.
    """
    per_group = ((w.detach() - b.detach()) * nll).sum(-1)  # [G]
    if tokens is not None:
        per_group = per_group / tokens.float().mean(-1).clamp_min(1.0)
    return per_group.mean()


def kl_divergence(log_w: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(w' || b') = sum_i w'_i (log w'_i - log b'_i) per group, from log-weights: [G, n] -> [G].

    Monitored during training: it falls as Q_theta approaches the target (SPEC.md section 4).
    Taking logs (`log_normalized_weights`, `log_normalized_baseline`) keeps it exact where b'_i
    underflows: clamping b' at 1e-12 capped the KL near 27.6 nats. Terms with w'_i = 0 contribute 0.
    """
    terms = log_w.exp() * (log_w - log_b)
    return torch.where(log_w.exp() > 0, terms, torch.zeros_like(terms)).sum(-1)


def effective_sample_size(w: torch.Tensor) -> torch.Tensor:
    """Kish effective sample size of normalised weights, 1 / sum_i w'_i^2: [G, n] -> [G], in [1, n]."""
    return 1.0 / (w ** 2).sum(-1)
