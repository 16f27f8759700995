"""RLOO (Ahmadian et al. 2024): G samples per prompt, leave-one-out baseline, no critic.

A GRPOTrainer sibling: the same group sampling, but each response's reward is its score
minus kl_coef times its summed KL to the reference (the PPO trainer's per-token rewards,
summed), and its advantage is that reward minus the mean reward of the other G-1 samples
of its prompt, on every token. The loss is the clipped policy loss alone (the KL is in the
reward). From a recipe: `kind: ppo`, `trainer: align.trainers.rloo:RLOOTrainer`.
`trainer_options: {normalize_advantages: true}` scales the advantages to mean 0, std 1 over the
step's responses (population std, + 1e-4; TRL's RLOO option of that name divides by the sample std):
unnormalised they are in reward units, so the reward's scale sets the step size, where GRPO's group
normalisation does not.
"""
from __future__ import annotations

import torch
from pydantic import Field

from align.losses import clipped_policy_loss
from align.trainers.grpo import GroupOptions, GRPOTrainer


class RLOOOptions(GroupOptions):
    normalize_advantages: bool = Field(False, description="Advantages to mean 0, std 1 over the step's responses "
                                                          "(every process's), one value per response.")


class RLOOTrainer(GRPOTrainer):
    """RLOO: REINFORCE with a leave-one-out baseline over each prompt's samples, KL in the reward."""

    Options = RLOOOptions

    def group_scores(self, batch) -> torch.Tensor:
        return batch["rewards"].sum(1).view(-1, self.group_size)  # score - kl_coef * sum_t KL_t

    def advantages(self, batch):
        r = self.group_scores(batch)
        baseline = (r.sum(1, keepdim=True) - r) / (self.group_size - 1)
        adv = (r - baseline).reshape(-1)
        if (self.options or self.Options()).normalize_advantages:
            acc = self.accelerator  # mean and std over every process's responses
            stats = torch.stack([adv.new_tensor(float(len(adv))), adv.sum(), (adv * adv).sum()])
            n, total, squares = (acc.reduce(stats, "sum") if acc.num_processes > 1 else stats).tolist()
            mean = total / n
            std = max(squares / n - mean * mean, 0.0) ** 0.5
            adv = (adv - mean) / (std + 1e-4)
        mask = batch["response_mask"]
        return adv.reshape(-1, 1) * mask, torch.zeros_like(mask)

    def compute_loss(self, model, batch):
        logps, _, _ = self.forward(model, batch, with_values=False)
        pg_loss, stats = clipped_policy_loss(logps, batch["old_logps"], batch["advantages"], batch["response_mask"],
                                             self.s.clip)
        return pg_loss, {"policy_loss": pg_loss.item(), "clip_fraction": stats["clip_fraction"].item(),
                         "approx_kl": stats["approx_kl"].item()}
