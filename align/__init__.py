"""steeralign: multi-attribute reward models and alignment by SteerLM, DPO, PPO, GRPO and RLOO.

The names a user's own trainer or script needs import from here (`from align import
DPOTrainer, TrainConfig`); they load lazily, so `align run --dry-run` stays fast.
"""
from __future__ import annotations

from align.lazy_exports import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "TrainConfig": "align.config.base",
    "StrictModel": "align.config.base",
    "ModelSpec": "align.config.model_spec",
    "TinyModelSpec": "align.config.model_spec",
    "BaseTrainer": "align.trainers.base",
    "SFTTrainer": "align.trainers.sft",
    "DPOTrainer": "align.trainers.dpo",
    "PPOTrainer": "align.trainers.ppo",
    "PPOSettings": "align.trainers.ppo",
    "GRPOTrainer": "align.trainers.grpo",
    "RLOOTrainer": "align.trainers.rloo",
    "SteerLM2Trainer": "align.trainers.steerlm2",
    "RewardModelTrainer": "rewards.trainer",
    "tokenize_conversation": "align.chat",
    "tokenize_pair": "align.trainers.dpo",
    "tokenize_response": "align.steerlm.sequences",
    "token_logps": "align.trainers.dpo",
    "token_nll": "align.trainers.sft",
    "dpo_loss": "align.losses",
    "clipped_policy_loss": "align.losses",
    "masked_mean": "align.losses",
    "load_model": "align.models",
    "save_model": "align.models",
    "load_helpsteer": "align.data",
    "load_conversations": "align.data",
    "load_preference_pairs": "align.data",
    "load_prompts": "align.data",
    "pairs_from_ratings": "align.data",
    "register_stage": "align.stages.base",
    "Stage": "align.stages.base",
    "StageConfig": "align.stages.base",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("align", globals(), _EXPORTS)
