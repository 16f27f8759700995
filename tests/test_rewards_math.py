"""Reward-model math: Beta P(a|x,y) against scipy, BT losses and masked MSE against hand values."""
import math

import pytest
import torch
from scipy.stats import beta as scipy_beta

from rewards.beta import attribute_log_prob, beta_attribute_log_prob, betainc
from rewards.losses import bradley_terry_loss, bt_margin, bt_regular, bt_scaled, masked_mse
from rewards.presets import WEIGHT_PRESETS, resolve_weights


def _scipy_log_mass(r: float, n: int) -> float:
    mu = min(max(r / 4, 1e-3), 1 - 1e-3)
    a, b = 24 * mu, 24 - 24 * mu
    lo, hi = max((n - 0.5) / 4, 0.0), min((n + 0.5) / 4, 1.0)
    # scipy's sf keeps precision in the upper tail
    mass = scipy_beta.sf(lo, a, b) - scipy_beta.sf(hi, a, b) if lo >= mu else \
        scipy_beta.cdf(hi, a, b) - scipy_beta.cdf(lo, a, b)
    return math.log(mass)


@pytest.mark.parametrize("r", [0.0, 0.05, 0.7, 1.5, 2.0, 2.9, 3.6, 4.0])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_beta_log_prob_matches_scipy(r, n):
    if r in (0.0, 4.0) and abs(n - r) >= 3:
        pytest.skip("mass below float64 range in scipy")
    got = beta_attribute_log_prob(torch.tensor([r]), torch.tensor([n])).item()
    assert got == pytest.approx(_scipy_log_mass(r, n), rel=1e-4, abs=1e-6)


def test_betainc_matches_scipy_on_grid():
    from scipy.special import betainc as sp_betainc

    a = torch.tensor([0.3, 1.0, 6.0, 12.0, 23.5])
    b = torch.tensor([23.7, 23.0, 18.0, 12.0, 0.5])
    for x in [0.0, 0.1, 0.375, 0.5, 0.875, 1.0]:
        got = betainc(a, b, torch.full_like(a, x))
        want = torch.tensor(sp_betainc(a.numpy(), b.numpy(), x), dtype=torch.float64)
        assert torch.allclose(got, want, atol=1e-10)


def test_bins_sum_to_one_and_peak_at_prediction():
    pred = torch.tensor([[0.4, 2.0, 3.3]])  # [1, 3]
    masses = torch.stack([beta_attribute_log_prob(pred, torch.full((3,), n)).exp() for n in range(5)])  # [5, 1, 3]
    assert torch.allclose(masses.sum(0), torch.ones(1, 3), atol=1e-6)
    assert masses.argmax(0).tolist() == [[0, 2, 3]]


def test_attribute_log_prob_sums_and_has_gradient():
    pred = torch.tensor([[4.0, 2.0], [1.0, 3.0]], requires_grad=True)
    target = torch.tensor([4, 2])
    total = attribute_log_prob(pred, target)  # [2]
    per = beta_attribute_log_prob(pred, target)  # [2, 2]
    assert torch.allclose(total, per.sum(-1))
    total.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1, 0] > 0  # raising 1.0 towards 4 helps


def test_bt_losses_hand_values():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    strength = torch.tensor([1.0, 2.0])
    sp = lambda x: math.log1p(math.exp(x))  # -log sigmoid(-x)
    assert bt_regular(chosen, rejected).item() == pytest.approx((sp(-1) + sp(1)) / 2, rel=1e-6)  # 0.8132617
    assert bt_margin(chosen, rejected, strength).item() == pytest.approx((sp(0) + sp(3)) / 2, rel=1e-6)
    assert bt_scaled(chosen, rejected, strength).item() == pytest.approx((1 * sp(-1) + 2 * sp(1)) / 2, rel=1e-6)
    assert bradley_terry_loss("regular", chosen, rejected, strength).item() == pytest.approx(0.8132617, rel=1e-6)
    assert bradley_terry_loss("margin", chosen, rejected, strength).item() == pytest.approx(1.8708673, rel=1e-6)
    assert bradley_terry_loss("scaled", chosen, rejected, strength).item() == pytest.approx(1.4698926, rel=1e-6)
    with pytest.raises(ValueError):
        bradley_terry_loss("hinge", chosen, rejected, strength)


def test_masked_mse_hand_value():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    labels = torch.tensor([[1.0, -100.0], [1.0, 5.0]])
    loss = masked_mse(pred, labels)
    assert loss.item() == pytest.approx((0 + 4 + 1) / 3)
    loss.backward()
    assert pred.grad[0, 1] == 0  # a missing label gets no gradient
    assert masked_mse(pred, torch.full((2, 2), -100.0)).item() == 0.0


def test_resolve_weights():
    attrs = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    assert resolve_weights("goodness", attrs).tolist() == pytest.approx([0.65, 0.8, 0.45, 0.0, 0.0])
    assert resolve_weights("nemotron4_340b", attrs).tolist() == pytest.approx([0.3, 0.74, 0.46, 0.47, -0.33])
    assert resolve_weights("llama3_70b", attrs).tolist() == pytest.approx([0.65, 0.8, 0.45, 0.55, -0.4])
    assert resolve_weights({"verbosity": -1}, attrs).tolist() == [0, 0, 0, 0, -1]
    assert resolve_weights([1, 2], ["helpfulness", "verbosity"]).tolist() == [1, 2]
    assert set(WEIGHT_PRESETS) == {"nemotron4_340b", "llama3_70b", "goodness"}
    from align.errors import AlignError

    with pytest.raises(AlignError):
        resolve_weights("goodness", ["helpfulness"])  # correctness has weight but no head
    with pytest.raises(AlignError):
        resolve_weights([1.0], attrs)
