"""RLOO's advantages: the leave-one-out baseline by hand, and `normalize_advantages` (TRL's option)."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from align.trainers.rloo import RLOOOptions, RLOOTrainer


def _advantages(rewards: torch.Tensor, normalize: bool) -> torch.Tensor:
    trainer = SimpleNamespace(group_size=4, options=RLOOOptions(group_size=4, normalize_advantages=normalize),
                              Options=RLOOOptions, accelerator=SimpleNamespace(num_processes=1))
    trainer.group_scores = lambda batch: RLOOTrainer.group_scores(trainer, batch)
    mask = torch.ones(len(rewards), 3)
    batch = {"rewards": torch.stack([rewards, torch.zeros_like(rewards), torch.zeros_like(rewards)], 1),
             "response_mask": mask}
    adv, returns = RLOOTrainer.advantages(trainer, batch)
    assert torch.equal(returns, torch.zeros_like(mask))
    assert torch.equal(adv, adv[:, :1].expand_as(adv))  # one value on every token of a response
    return adv[:, 0]


def test_leave_one_out_baseline_and_normalisation():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 4.0, 4.0])  # two prompts x 4 samples
    plain = _advantages(rewards, normalize=False)
    # sample 0 of prompt 0: 1 - mean(2, 3, 6); sample 3: 6 - mean(1, 2, 3)
    expected = torch.tensor([1 - 11 / 3, 2 - 10 / 3, 3 - 3, 6 - 2, 0 - 8 / 3, 0 - 8 / 3, 4 - 4 / 3, 4 - 4 / 3])
    torch.testing.assert_close(plain, expected)
    scaled = _advantages(rewards, normalize=True)
    assert abs(scaled.mean().item()) < 1e-6
    torch.testing.assert_close(scaled.pow(2).mean().sqrt(), torch.tensor(1.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(scaled, (plain - plain.mean()) / (plain.std(unbiased=False) + 1e-4))
