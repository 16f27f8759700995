"""P(a|x,y) under the Beta attribute model of SteerLM 2.0 (SPEC.md section 4).

Each predicted attribute r in [0, 4] becomes the mean mu = r / 4 of a Beta distribution
with alpha = 24 * mu and beta = 24 - alpha (concentration 24, so alpha = 6 r as in the
paper's "alpha = 24 r" on the [0,1] scale). The probability of the integer label n is the
Beta mass of the bin [(n - 0.5) / 4, (n + 0.5) / 4] clipped to [0, 1] (the bin edges are an
inference: the paper does not give them). Attributes combine as a product, so their
log-probabilities add (also an inference).

Pure torch (no scipy) so it runs on any device and is differentiable in `pred`.
"""
from __future__ import annotations

import torch

_TINY = 1e-30


def _betacf(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, iters: int) -> torch.Tensor:
    """Continued fraction for the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = torch.ones_like(x)
    d = 1.0 - qab * x / qap
    d = torch.where(d.abs() < _TINY, torch.full_like(d, _TINY), d).reciprocal()
    h = d
    for m in range(1, iters + 1):
        m2 = 2.0 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = torch.where(d.abs() < _TINY, torch.full_like(d, _TINY), d).reciprocal()
            c = 1.0 + aa / c
            c = torch.where(c.abs() < _TINY, torch.full_like(c, _TINY), c)
            h = h * d * c
    return h


def betainc(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """Regularised incomplete beta I_x(a, b) elementwise (broadcasting); float64 inside.

    Uses the continued fraction directly where x < (a+1)/(a+b+2) and the symmetry
    I_x(a,b) = 1 - I_{1-x}(b,a) elsewhere, where the fraction converges fast. With a, b <= 24
    (our concentration) 100 iterations are far more than enough.
    """
    a, b, x = torch.broadcast_tensors(a.double(), b.double(), x.double())
    swap = x > (a + 1.0) / (a + b + 2.0)
    a2, b2 = torch.where(swap, b, a), torch.where(swap, a, b)
    x2 = torch.where(swap, 1.0 - x, x).clamp(1e-300, 1.0 - 1e-16)
    log_front = (torch.lgamma(a2 + b2) - torch.lgamma(a2) - torch.lgamma(b2)
                 + a2 * torch.log(x2) + b2 * torch.log1p(-x2))
    val = torch.exp(log_front) * _betacf(a2, b2, x2, iters) / a2
    val = torch.where(swap, 1.0 - val, val)
    val = torch.where(x <= 0, torch.zeros_like(val), val)
    return torch.where(x >= 1, torch.ones_like(val), val)


def beta_bin_mass(alpha: torch.Tensor, beta: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Beta(alpha, beta) mass of [lo, hi], computed in the tail where it is small (no 1 - 1 cancellation)."""
    lower = betainc(alpha, beta, hi) - betainc(alpha, beta, lo)
    # Upper tail: the same mass as a lower-tail difference of the mirrored distribution.
    upper = betainc(beta, alpha, 1.0 - lo) - betainc(beta, alpha, 1.0 - hi)
    mean = alpha.double() / (alpha.double() + beta.double())
    return torch.where(lo.double() >= mean, upper, lower)


def beta_attribute_log_prob(pred: torch.Tensor, target: torch.Tensor | float, concentration: float = 24.0,
                            eps: float = 1e-3, max_value: float = 4.0) -> torch.Tensor:
    """log P(attribute = target | predicted r), elementwise over [..., A] (SPEC.md section 4).

    pred: predicted attributes on the 0..max_value scale, [..., A]; target: integer labels
    0..max_value, broadcastable to pred. mu = pred / max_value is clipped to [eps, 1 - eps]
    so alpha, beta > 0. Returns [..., A] in pred's floating dtype.
    """
    target = torch.as_tensor(target, device=pred.device).double()
    mu = (pred.double() / max_value).clamp(eps, 1.0 - eps)
    alpha = concentration * mu
    beta = concentration - alpha
    lo = ((target - 0.5) / max_value).clamp(0.0, 1.0)
    hi = ((target + 0.5) / max_value).clamp(0.0, 1.0)
    lo, hi, alpha, beta = torch.broadcast_tensors(lo, hi, alpha, beta)
    mass = beta_bin_mass(alpha, beta, lo, hi).clamp_min(1e-300)
    dtype = pred.dtype if pred.is_floating_point() else torch.float32
    return torch.log(mass).to(dtype)


def attribute_log_prob(pred: torch.Tensor, target: torch.Tensor | list, **kwargs) -> torch.Tensor:
    """Sum over attributes of `beta_attribute_log_prob`: pred [N, A], target [N, A] or [A] -> [N]."""
    target = torch.as_tensor(target, device=pred.device)
    return beta_attribute_log_prob(pred, target, **kwargs).sum(-1)
