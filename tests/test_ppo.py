"""PPO trainer mechanics with a rule-based reward (the world oracle) on a tiny model."""
import math

import pytest
import torch

from align.config.base import TrainConfig
from align.config.model_spec import TinyModelSpec
from align.data import load_prompts
from align.world.oracle import OracleReward
from align.trainers.ppo import PPOSettings, PPOTrainer, sample_responses
from align.world.generator import generate_world
from align.world.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("world")
    paths = generate_world(root, prompts=60, test_prompts=10)
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    return root, tok, load_prompts(str(paths["prompts_train"]))


def _model(tok):
    return build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)


def test_token_rewards_put_score_on_last_token_minus_kl(world):
    root, tok, _ = world
    trainer = PPOTrainer(_model(tok), tok, OracleReward(), TrainConfig(), root / "t",
                         PPOSettings(kl_coef=0.5, kl_estimator="k1"))
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, kl = trainer.token_rewards(torch.tensor([2.0, -1.0]), logps, ref, mask)
    assert kl.tolist() == [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert rewards.tolist() == [[-0.25, 2.0, 0.0], [0.0, 0.0, -1.0]]


def test_sample_responses_mask_ends_at_first_eos(world):
    _, tok, prompts = world
    model = _model(tok)
    batch, texts, has_eos = sample_responses(model, tok, prompts[:6], max_new_tokens=10, seed=0)
    R = batch["response_mask"].shape[1]
    response = batch["input_ids"][:, batch["prompt_len"]:]
    for row in range(6):
        n = int(batch["response_mask"][row].sum())
        if has_eos[row]:
            assert response[row, n - 1].item() == tok.eos_token_id
            assert (response[row, : n - 1] != tok.eos_token_id).all()
        else:
            assert n == R
        assert (response[row, n:] == tok.pad_token_id).all()
    assert len(texts) == 6


class CountingReward:
    """Rule-based reward: +1 per response without digits (any callable (prompts, responses) -> floats works)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, responses):
        self.calls += len(responses)
        return [float(not any(ch.isdigit() for ch in r)) for r in responses]


@pytest.mark.parametrize("critic,kl_target", [("shared", None), ("separate", 1.0)])
def test_ppo_steps_update_policy_and_report_metrics(world, critic, kl_target):
    root, tok, prompts = world
    model = _model(tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    reward = CountingReward()
    settings = PPOSettings(steps=2, rollout_batch=8, minibatch=4, ppo_epochs=2, max_new_tokens=8, critic=critic,
                           kl_target=kl_target, kl_estimator="k3")
    trainer = PPOTrainer(model, tok, reward, TrainConfig(lr=1e-3, log_every=1), root / f"ppo_{critic}", settings)
    metrics = trainer.train(prompts)
    assert reward.calls == 16
    for key in ("ppo/reward_final", "ppo/kl_final", "ppo/value_loss_final", "ppo/clip_fraction_final",
                "ppo/entropy_final", "ppo/response_length_final", "ppo/kl_coef_final"):
        assert math.isfinite(metrics[key]), key
    assert metrics["ppo/entropy_final"] > 0
    moved = max((p.detach() - before[n]).abs().max().item() for n, p in trainer.unwrapped_model().named_parameters())
    assert moved > 0
    # The reference stays the initial policy.
    for n, p in trainer.ref_model.named_parameters():
        assert torch.equal(p, before[n])
    if kl_target is not None:
        assert trainer.kl_ctl.value != settings.kl_coef
