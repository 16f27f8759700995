"""DPO and PPO loss functions against hand-computed values (SPEC.md section 5)."""
import math

import pytest
import torch

from align.losses import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    dpo_loss,
    gae,
    kl_estimate,
    masked_whiten,
)


def _s(x):
    return 1 / (1 + math.exp(-x))


def test_dpo_sigmoid_and_label_smoothing_by_hand():
    pc, pr, rc, rr = torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5])
    # logits = (-1 - -2) - (-3 - -2.5) = 1.5; h = 0.2 * 1.5 = 0.3
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.2)
    assert loss.item() == pytest.approx(-math.log(_s(0.3)), abs=1e-6)
    assert stats["chosen_rewards"].item() == pytest.approx(0.2)
    assert stats["rejected_rewards"].item() == pytest.approx(-0.1)
    smooth, _ = dpo_loss(pc, pr, rc, rr, beta=0.2, label_smoothing=0.1)
    assert smooth.item() == pytest.approx(-0.9 * math.log(_s(0.3)) - 0.1 * math.log(_s(-0.3)), abs=1e-6)


def test_dpo_ipo_margin_scaled_by_hand():
    pc, pr, rc, rr = torch.tensor([-1.0, 0.0]), torch.tensor([-3.0, -1.0]), torch.zeros(2), torch.zeros(2)
    # logits = [2, 1]
    ipo, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo", ipo_normalize="sum")
    assert ipo.item() == pytest.approx(((2 - 1) ** 2 + (1 - 1) ** 2) / 2, abs=1e-6)
    # per-token means (the default): chosen lengths [2, 1], rejected [3, 4] -> d = [-1/2 + 3/3, 0 + 1/4]
    ipo_tok, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo", chosen_tokens=torch.tensor([2, 1]),
                          rejected_tokens=torch.tensor([3, 4]))
    assert ipo_tok.item() == pytest.approx(((0.5 - 1) ** 2 + (0.25 - 1) ** 2) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="token counts"):
        dpo_loss(pc, pr, rc, rr, loss_type="ipo")
    with pytest.raises(ValueError, match="sigmoid loss only"):
        dpo_loss(pc, pr, rc, rr, loss_type="ipo", ipo_normalize="sum", label_smoothing=0.1)
    m = torch.tensor([1.0, 3.0])
    margin, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="margin", strength=m)
    assert margin.item() == pytest.approx((-math.log(_s(1 - 1)) - math.log(_s(0.5 - 3))) / 2, abs=1e-6)
    scaled, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="scaled", strength=m)
    assert scaled.item() == pytest.approx((-1 * math.log(_s(1)) - 3 * math.log(_s(0.5))) / 2, abs=1e-6)
    with pytest.raises(ValueError):
        dpo_loss(pc, pr, rc, rr, loss_type="margin")


def test_gae_by_hand():
    # one sequence of 3 tokens, then padding; gamma=0.9, lam=0.8
    r = torch.tensor([[0.0, 0.0, 1.0, 5.0]])
    v = torch.tensor([[0.5, 0.4, 0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae(r, v, mask, gamma=0.9, lam=0.8)
    d2 = 1.0 + 0.9 * 0 - 0.3
    d1 = 0.0 + 0.9 * 0.3 - 0.4
    d0 = 0.0 + 0.9 * 0.4 - 0.5
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, a2, 0.0], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.4, a2 + 0.3, 0.0], abs=1e-6)


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    r = torch.tensor([[0.1, -0.2, 2.0]])
    v = torch.tensor([[1.0, 2.0, 3.0]])
    adv, _ = gae(r, v, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1.9 - 1.0, 1.8 - 2.0, 2.0 - 3.0], abs=1e-6)


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    # log r = ref - logp = [-0.5, 1.0]
    assert kl_estimate(logp, ref, "k1").tolist() == pytest.approx([0.5, -1.0])
    assert kl_estimate(logp, ref, "k2").tolist() == pytest.approx([0.125, 0.5])
    assert kl_estimate(logp, ref, "k3").tolist() == pytest.approx([math.exp(-0.5) - 1 + 0.5, math.e - 1 - 1.0])


def test_kl_estimators_are_unbiased_for_categoricals():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.4, 0.4])
    exact = (p * (p / q).log()).sum()
    logp, logq = p.log(), q.log()
    for kind in ("k1", "k3"):
        assert (p * kl_estimate(logp, logq, kind)).sum().item() == pytest.approx(exact.item(), abs=1e-6)


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, 1.0, -2.0]])
    loss, stats = clipped_policy_loss(new, old, adv, torch.ones(1, 3), clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5; token 2: max(2.2, 2.2) = 2.2
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(1 / 3)
    masked, _ = clipped_policy_loss(new, old, adv, torch.tensor([[1, 1, 0]]), clip=0.2)
    assert masked.item() == pytest.approx((-1.2 - 0.5) / 2, abs=1e-6)


def test_clipped_value_loss_by_hand():
    values, old, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[2.0, -1.0]])
    loss, _ = clipped_value_loss(values, old, returns, torch.ones(1, 2), clip=0.2)
    # token 0: unclipped (1-2)^2 = 1, clipped v=0.7 -> 1.69, max 1.69; token 1: 1 and 1
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.0) / 2, abs=1e-6)


def test_whiten_and_adaptive_kl():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    w = masked_whiten(x, torch.tensor([[1, 1, 1, 0]]))
    assert w[0, :3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-4)
    assert w[0, 3].item() == 0.0
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl.update(current_kl=12.0, n_steps=10)  # error clipped to 0.2 -> 0.1 * (1 + 0.2 * 0.1)
    assert ctl.value == pytest.approx(0.102)
    ctl.update(current_kl=5.4, n_steps=50)  # error -0.1 -> * 0.95
    assert ctl.value == pytest.approx(0.102 * 0.95)
