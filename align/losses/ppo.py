"""PPO pieces as pure functions (SPEC.md section 5; Schulman et al. 2017, Ziegler et al. 2019).

Shapes: B responses, T response tokens (right-padded); `mask` [B, T] is 1 on real tokens.
"""
from __future__ import annotations

from typing import Literal

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x where mask is 1 (over everything, or along `dim`)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  reduce_sum=None) -> torch.Tensor:
    """(x - mean) / std over masked entries (unbiased variance, as TRL/OpenRLHF); zero where mask is 0.

    shift_mean=False keeps the mean (only rescales), as used for advantages in some PPO variants.
    reduce_sum: sums a 1-d tensor over all processes (e.g. ``lambda t: accelerator.reduce(t, "sum")``),
    so the mean and variance are those of every process's masked entries.
    """
    total = reduce_sum or (lambda t: t)
    mask = mask.to(x.dtype)
    sums = total(torch.stack([(x * mask).sum(), mask.sum()]))
    mean = sums[0] / sums[1].clamp_min(1)
    var = total((((x - mean) ** 2) * mask).sum().reshape(1))[0] / (sums[1].clamp_min(2) - 1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), per token.

    rewards, values, mask: [B, T]. delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lam A_{t+1},
    with V and A zero past the last real token (the episode ends there).
    Returns (advantages [B, T], returns [B, T] = A + V), zero where mask is 0.
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    T = rewards.shape[1]
    last = torch.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        out.append(last)
    advantages = torch.stack(out[::-1], dim=1)
    return advantages, (advantages + values) * mask


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                kind: Literal["k1", "k2", "k3"] = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from samples of pi (Schulman, "Approximating KL divergence").

    With log r = ref - logp: k1 = -log r (unbiased, can be negative), k2 = (log r)^2 / 2,
    k3 = (r - 1) - log r (unbiased, >= 0). Inputs [B, T] -> [B, T].
    """
    log_ratio = ref_logprobs - logprobs
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio ** 2
    if kind == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}")


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate: mean over tokens of max(-A rho, -A clip(rho, 1-clip, 1+clip)), rho = pi/pi_old.

    All inputs [B, T]. Stats: `clip_fraction` (tokens where the clipped term was taken) and
    `approx_kl` (k3 estimate of KL(pi_old || pi)), both detached.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = masked_mean(torch.expm1(-log_ratio) + log_ratio, mask)
    return loss, {"clip_fraction": clip_fraction, "approx_kl": approx_kl}


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """0.5 * mean over tokens of max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2). Inputs [B, T]."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    err = (values - returns) ** 2
    err_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(err, err_clipped), mask)
    with torch.no_grad():
        frac = masked_mean((err_clipped > err).float(), mask)
    return loss, {"value_clip_fraction": frac}


def entropy_from_logits(logits: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Per-position entropy of the softmax: [..., V] -> [...], in fp32.

    Without a gradient to keep, `chunk` rows at a time (no fp32 copy of the whole logits). The
    trainers get entropies from `align.logprobs` (with the log-probs, no full logits at all).
    """
    if torch.is_grad_enabled() and logits.requires_grad:
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -(logp.exp() * logp).sum(-1)
    if logits.dim() == 1:
        return _entropy_rows(logits.unsqueeze(0))[0]
    out = torch.empty(logits.shape[:-1], dtype=torch.float32, device=logits.device)
    for i in range(logits.shape[0]):  # the leading index, then `chunk` rows of the rest
        x, o = logits[i].reshape(-1, logits.shape[-1]), out[i].view(-1)
        for s in range(0, x.shape[0], chunk):
            o[s : s + chunk] = _entropy_rows(x[s : s + chunk])
    return out


def _entropy_rows(x: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(x.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, section 2.2).

    e = clip(KL / target - 1, -0.2, 0.2); beta <- beta * (1 + e * n_steps / horizon).
    """

    def __init__(self, init: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon
