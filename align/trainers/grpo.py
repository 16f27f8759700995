"""GRPO (Shao et al. 2024, DeepSeekMath): G samples per prompt, group-relative advantages, no critic.

A PPOTrainer subclass through its override points: `rollout` samples each prompt G times,
`advantages` gives every token of a response (score - group mean) / (group std + eps), and
`compute_loss` is the clipped policy loss plus kl_coef times the k3 KL to the reference
(in the loss, as the paper has it, not in the reward). Run it from a recipe:
`kind: ppo`, `trainer: align.trainers.grpo:GRPOTrainer`, `trainer_options: {group_size: 4}`.
"""
from __future__ import annotations

import torch
from pydantic import Field

from align.config.base import StrictModel
from align.errors import TrainingError
from align.losses import clipped_policy_loss, kl_estimate, masked_mean
from align.trainers.ppo import PPOTrainer


class GroupOptions(StrictModel):
    group_size: int = Field(4, ge=2, description="Responses sampled per prompt; rollout_batch / processes must "
                                                 "be a multiple of it.")


class GRPOTrainer(PPOTrainer):
    """GRPO: group-normalised scores as advantages, KL to the reference in the loss, no value model."""

    Options = GroupOptions
    uses_critic = False

    @classmethod
    def check_config(cls, config, options) -> list[str]:
        """Recipe-time check (align.plugins): every process's slice of a step holds whole groups."""
        world = config.distributed.world_size if config.distributed else 1
        G = options.group_size if options else cls.Options().group_size
        if config.rollout_batch % (G * world):
            return [f"rollout_batch {config.rollout_batch} must be a multiple of group_size {G} x {world} "
                    "process(es)"]
        return []

    @property
    def group_size(self) -> int:
        return (self.options or self.Options()).group_size

    def rollout(self, prompts, seed):
        G = self.group_size
        if len(prompts) % G:
            raise TrainingError(f"{type(self).__name__}: each process samples {len(prompts)} responses a step, "
                                f"not a multiple of group_size {G}; set rollout_batch to a multiple of "
                                f"{G} x processes")
        groups = prompts[: len(prompts) // G]
        targets = self.draw_targets(len(groups), seed) if self.s.target_distribution else None  # one per group
        return super().rollout([p for p in groups for _ in range(G)], seed,
                               [t for t in targets for _ in range(G)] if targets else None)

    def group_scores(self, batch) -> torch.Tensor:
        """Each response's scalar reward, one row per group: [B / G, G]."""
        return batch["scores"].view(-1, self.group_size)

    def combine_vectors(self, vectors):
        """GDPO within each prompt's group: each attribute standardised over the G samples, then weighted."""
        from rewards.vector import standardized_sum

        return standardized_sum(vectors, self.reward_fn.weights, groups=len(vectors) // self.group_size)

    def advantages(self, batch):
        s = self.group_scores(batch)
        adv = (s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + 1e-4)
        mask = batch["response_mask"]
        return adv.reshape(-1, 1) * mask, torch.zeros_like(mask)

    def compute_loss(self, model, batch):
        logps, _, _ = self.forward(model, batch, with_values=False)
        mask = batch["response_mask"]
        pg_loss, stats = clipped_policy_loss(logps, batch["old_logps"], batch["advantages"], mask, self.s.clip)
        kl = masked_mean(kl_estimate(logps, batch["ref_logps"], "k3"), mask)
        loss = pg_loss + self.kl_ctl.value * kl
        return loss, {"policy_loss": pg_loss.item(), "kl_loss": kl.item(),
                      "clip_fraction": stats["clip_fraction"].item(), "approx_kl": stats["approx_kl"].item()}
