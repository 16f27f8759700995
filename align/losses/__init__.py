"""Pure loss functions (no model, no trainer): DPO variants and the PPO pieces (SPEC.md section 5).

Trainers call these from their public `compute_loss`; a new algorithm reuses them.
"""
from align.losses.dpo import chosen_nll, dpo_loss, preference_logits
from align.losses.ppo import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gae,
    kl_estimate,
    masked_mean,
    masked_whiten,
)

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "clipped_policy_loss",
    "chosen_nll",
    "clipped_value_loss",
    "dpo_loss",
    "entropy_from_logits",
    "gae",
    "kl_estimate",
    "masked_mean",
    "masked_whiten",
    "preference_logits",
]
