"""Trainers. `BaseTrainer` owns the loop; each algorithm overrides `compute_loss`.

`from align.trainers import DPOTrainer, tokenize_pair` and the like work (loaded lazily).
"""
from __future__ import annotations

from align.lazy_exports import lazy_exports

_EXPORTS = {
    "BaseTrainer": "align.trainers.base",
    "SFTTrainer": "align.trainers.sft",
    "token_nll": "align.trainers.sft",
    "sft_loss": "align.trainers.sft",
    "DPOTrainer": "align.trainers.dpo",
    "PairExample": "align.trainers.dpo",
    "tokenize_pair": "align.trainers.dpo",
    "token_logps": "align.trainers.dpo",
    "PPOTrainer": "align.trainers.ppo",
    "PPOSettings": "align.trainers.ppo",
    "GRPOTrainer": "align.trainers.grpo",
    "RLOOTrainer": "align.trainers.rloo",
    "SteerLM2Trainer": "align.trainers.steerlm2",
    "SampleGroup": "align.trainers.steerlm2",
    "RewardModelTrainer": "rewards.trainer",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("align.trainers", globals(), _EXPORTS)
