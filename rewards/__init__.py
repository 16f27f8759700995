"""The reward-modelling module (SPEC.md sections 2 and 4).

- `rewards.model`: AttributeRewardModel (backbone + linear head per attribute), load_reward_model
- `rewards.losses`: masked MSE, Bradley-Terry regular / margin / scaled
- `rewards.trainer`: RewardModelTrainer (on align's BaseTrainer)
- `rewards.scoring`: RewardScorer (predict, scalar, log_prob): what PPO, DPO and SteerLM 2.0 call
- `rewards.interface`: RewardFunction protocol, RMReward
- `rewards.beta`: log P(a|x,y) under the Beta attribute model
- `rewards.presets`: published weight vectors
- `rewards.rewardbench`: RewardBench-style accuracy with the official section weighting
"""
