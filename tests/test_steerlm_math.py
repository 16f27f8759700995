"""SteerLM 2.0 math (SPEC.md section 4) against hand-computed values and an enumerable toy.

The toy: a policy over K = 5 whole sequences, Q_theta(y|a,x) = softmax(theta). The
target P(y|a,x) ~ P(a|x,y) P(y|x) is computable exactly, so KL(P || Q_theta) and its exact
gradient are known.
"""
import math

import pytest
import torch

from align.steerlm import labels as L
from align.steerlm.weights import (
    effective_sample_size,
    kl_divergence,
    log_normalized_baseline,
    log_normalized_weights,
    normalized_baseline,
    normalized_weights,
    steerlm2_loss,
)


def test_weights_hand_computed():
    # w = P(a|x,y) P(y|x) / Q'(y): (0.5*0.2/0.1, 0.25*0.4/0.4, 0.1*0.4/0.5) = (1, 0.25, 0.08)
    la = torch.log(torch.tensor([0.5, 0.25, 0.1]))
    lr = torch.log(torch.tensor([0.2, 0.4, 0.4]))
    lq = torch.log(torch.tensor([0.1, 0.4, 0.5]))
    w = normalized_weights(la, lr, lq)
    assert torch.allclose(w, torch.tensor([1.0, 0.25, 0.08]) / 1.33, atol=1e-6)
    assert math.isclose(float(effective_sample_size(w)), 1 / float((w ** 2).sum()), rel_tol=1e-6)
    # baseline is uniform when Q_theta == Q'
    assert torch.allclose(normalized_baseline(lq, lq), torch.full((3,), 1 / 3))
    b = torch.tensor([0.5, 0.25, 0.25])
    kl = 1.0 / 1.33 * math.log((1 / 1.33) / 0.5) + 0.25 / 1.33 * math.log((0.25 / 1.33) / 0.25) \
        + 0.08 / 1.33 * math.log((0.08 / 1.33) / 0.25)
    assert math.isclose(float(kl_divergence(w.log(), b.log())), kl, rel_tol=1e-5)


def test_kl_is_exact_where_the_baseline_underflows():
    """w' = (1, 0), b' = softmax(0, 40): KL = log(1 / b'_0) = 40 + log(1 + e^-40) nats. Clamping b' at
    1e-12 (the earlier code) gave 27.6."""
    log_w = log_normalized_weights(torch.tensor([0.0, -math.inf]), torch.zeros(2), torch.zeros(2))
    log_b = log_normalized_baseline(torch.tensor([0.0, 40.0]), torch.zeros(2))
    assert math.isclose(float(kl_divergence(log_w, log_b)), 40.0, rel_tol=1e-6)
    assert math.isclose(float(kl_divergence(log_w, log_w)), 0.0, abs_tol=1e-12)


def test_loss_value_gradient_and_token_scaling():
    nll = torch.tensor([[2.0, 4.0], [1.0, 1.0]], requires_grad=True)
    w = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    b = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    loss = steerlm2_loss(nll, w, b)
    # group 1: 0.25*2 - 0.25*4 = -0.5; group 2: 0 -> mean -0.25
    assert math.isclose(float(loss.detach()), -0.25)
    loss.backward()
    assert torch.allclose(nll.grad, (w - b) / 2)
    tokens = torch.tensor([[4, 6], [2, 2]])
    assert math.isclose(float(steerlm2_loss(nll.detach(), w, b, tokens)), (-0.5 / 5 + 0) / 2, rel_tol=1e-6)


def test_effective_sample_size_bounds():
    assert math.isclose(float(effective_sample_size(torch.full((4,), 0.25))), 4.0, rel_tol=1e-6)
    assert math.isclose(float(effective_sample_size(torch.tensor([1.0, 0, 0, 0]))), 1.0)


def test_label_string_round_trip_and_errors():
    attrs = {"verbosity": 2, "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 2}
    s = L.format_label(attrs)
    assert s == "helpfulness:4,correctness:4,coherence:4,complexity:2,verbosity:2"
    assert L.parse_label(s) == attrs
    assert L.attribute_prefix({"verbosity": 1}, marker="<m>") == "<m>verbosity:1\n"
    with pytest.raises(ValueError):
        L.format_label({"helpfulness": 5})
    with pytest.raises(ValueError):
        L.parse_label("helpfulness=4")
    assert L.clip_round([-0.7, 0.49, 2.5001, 3.6, 9.0]) == [0, 0, 3, 4, 4]


# ---- the enumerable toy ------------------------------------------------------------------
K = 5
LOG_P_REF = torch.log(torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05]))    # P(y|x), unconditional model
LOG_P_ATTR = torch.log(torch.tensor([0.05, 0.2, 0.6, 0.9, 0.5]))    # P(a|x,y), attribute model
LOG_P = torch.log_softmax(LOG_P_ATTR + LOG_P_REF, 0)                 # exact P(y|a,x)


def kl_p_q(theta):
    return (LOG_P.exp() * (LOG_P - torch.log_softmax(theta, 0))).sum()


def estimator_grad(theta, log_q_prop, samples):
    """Gradient of the SteerLM 2.0 loss for one group of sampled sequence ids [n]."""
    theta = theta.detach().clone().requires_grad_(True)
    log_q = torch.log_softmax(theta, 0)[samples]
    w = normalized_weights(LOG_P_ATTR[samples], LOG_P_REF[samples], log_q_prop[samples])
    b = normalized_baseline(log_q, log_q_prop[samples])
    steerlm2_loss(-log_q[None], w[None], b[None]).backward()
    return theta.grad


def test_exact_expectation_over_all_sequences_is_the_exact_gradient():
    # Weighting each of the K sequences by its proposal mass Q'(y) (the infinite-n limit of the
    # self-normalised sums) gives w' = P and b' = Q_theta: the estimator is exactly grad KL(P||Q_theta).
    torch.manual_seed(0)
    theta = torch.randn(K)
    log_q_prop = torch.log_softmax(torch.randn(K), 0)  # Q' != Q_theta: a mid-iteration step
    th = theta.clone().requires_grad_(True)
    kl_p_q(th).backward()
    th2 = theta.clone().requires_grad_(True)
    log_q = torch.log_softmax(th2, 0)
    w = torch.softmax(log_q_prop + LOG_P_ATTR + LOG_P_REF - log_q_prop, 0)
    b = torch.softmax(log_q_prop + log_q.detach() - log_q_prop, 0)
    assert torch.allclose(w, LOG_P.exp(), atol=1e-6)
    steerlm2_loss(-log_q[None], w[None], b[None]).backward()
    assert torch.allclose(th2.grad, th.grad, atol=1e-6)


def test_sampled_gradient_matches_exact_gradient_for_large_n_but_is_biased_for_small_n():
    torch.manual_seed(1)
    theta = torch.randn(K)
    log_q_prop = torch.log_softmax(theta + 0.5 * torch.randn(K), 0)
    th = theta.clone().requires_grad_(True)
    kl_p_q(th).backward()
    exact = th.grad
    big = torch.multinomial(log_q_prop.exp(), 200_000, replacement=True)
    g_big = estimator_grad(theta, log_q_prop, big)
    assert (g_big - exact).norm() < 0.02 * exact.norm() + 1e-3
    # n = 2: the expected gradient, computed exactly over all K^2 sample pairs, is not the exact one
    q = log_q_prop.exp()
    expected = sum(q[i] * q[j] * estimator_grad(theta, log_q_prop, torch.tensor([i, j]))
                   for i in range(K) for j in range(K))
    assert (expected - exact).norm() > 0.05 * exact.norm()


def test_iterations_drive_kl_to_zero():
    torch.manual_seed(2)
    theta = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.0], requires_grad=True)  # Q' of iteration 1: far from P
    kl_start = float(kl_p_q(theta))
    opt = torch.optim.Adam([theta], lr=0.1)
    kls = []
    for _iteration in range(8):
        log_q_prop = torch.log_softmax(theta.detach(), 0)                 # Q' <- Q_theta
        samples = torch.multinomial(log_q_prop.exp(), 64 * 16, replacement=True).view(16, 64)  # 16 groups of n=64
        for _epoch in range(20):
            log_q = torch.log_softmax(theta, 0)[samples]                  # [G, n]
            w = normalized_weights(LOG_P_ATTR[samples], LOG_P_REF[samples], log_q_prop[samples])
            b = normalized_baseline(log_q, log_q_prop[samples])
            opt.zero_grad()
            steerlm2_loss(-log_q, w, b).backward()
            opt.step()
        kls.append(float(kl_p_q(theta)))
    assert kl_start > 0.3
    assert kls[-1] < 0.02 * kl_start
    assert kls[-1] < kls[0]


def test_attribute_log_probs_match_reward_scorer_log_prob():
    from align.stages.steerlm2 import attribute_log_probs
    from rewards.beta import beta_attribute_log_prob

    attrs = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    pred = torch.tensor([[3.5, 4.0, 2.0, 1.0, 0.2], [0.5, 1.0, 4.0, 3.0, 2.0]])
    targets = [{"helpfulness": 4, "verbosity": 1}, {"coherence": 4}]
    got = attribute_log_probs(attrs, pred, targets)
    want0 = beta_attribute_log_prob(pred[0, [0, 4]], torch.tensor([4.0, 1.0])).sum()
    want1 = beta_attribute_log_prob(pred[1, [2]], torch.tensor([4.0])).sum()
    assert torch.allclose(got, torch.stack([want0, want1]).float(), atol=1e-6)
