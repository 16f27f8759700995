"""RLOO (Ahmadian et al. 2024): G samples per prompt, leave-one-out baseline, no critic.

A GRPOTrainer sibling: the same group sampling, but each response's reward is its score
minus kl_coef times its summed KL to the reference (the PPO trainer's per-token rewards,
summed), and its advantage is that reward minus the mean reward of the other G-1 samples
of its prompt, on every token. The loss is the clipped policy loss alone (the KL is in the
reward). From a recipe: `kind: ppo`, `trainer: align.trainers.rloo:RLOOTrainer`.
"""
from __future__ import annotations

import torch

from align.losses import clipped_policy_loss
from align.trainers.grpo import GRPOTrainer


class RLOOTrainer(GRPOTrainer):
    """RLOO: REINFORCE with a leave-one-out baseline over each prompt's samples, KL in the reward."""

    def group_scores(self, batch) -> torch.Tensor:
        return batch["rewards"].sum(1).view(-1, self.group_size)  # score - kl_coef * sum_t KL_t

    def advantages(self, batch):
        r = self.group_scores(batch)
        baseline = (r.sum(1, keepdim=True) - r) / (self.group_size - 1)
        mask = batch["response_mask"]
        return (r - baseline).reshape(-1, 1) * mask, torch.zeros_like(mask)

    def compute_loss(self, model, batch):
        logps, _, _ = self.forward(model, batch, with_values=False)
        pg_loss, stats = clipped_policy_loss(logps, batch["old_logps"], batch["advantages"], batch["response_mask"],
                                             self.s.clip)
        return pg_loss, {"policy_loss": pg_loss.item(), "clip_fraction": stats["clip_fraction"].item(),
                         "approx_kl": stats["approx_kl"].item()}
