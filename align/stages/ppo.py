"""Stage `kind: ppo`: actor-critic PPO against a reward function (SPEC.md section 5).

Distributed: DDP, DeepSpeed ZeRO-2/3 or FSDP (`distributed: {strategy: ...}`); see
align.trainers.ppo for how rollouts and minibatches are split, and align.trainers.actor_critic
for how sharded training samples from whole weights. Under ZeRO / FSDP every process saves
(the shards are gathered) and rank 0 evaluates the saved model; LoRA runs under DDP only (a
recipe error otherwise, as for every stage). Evaluations run on rank 0.

The reward block (`align.reward_sources.RewardSpec`, shared with `kind: dpo`): a reward is a
trained reward model scalarised by a weights preset (`model: rm`), or the world oracle as
a rule-based reward (`oracle: goodness`). Both are `rewards.interface.RewardFunction`s.
"""
from __future__ import annotations

import logging
import shutil
from typing import Annotated, Literal

from pydantic import Field, model_validator

from align.config.base import OracleEvalConfig, Ref, TrainConfig
from align.config.model_spec import ModelSpec
from align.engines.base import ENGINE_HELP, EngineName
from align.reward_sources import RewardSpec, build_reward
from align.steerlm.labels import DEFAULT_MARKER, format_label
from align.steerlm.steer_eval import PAPER_TARGET, SteerEvalConfig, WeightedTarget
from align.stages.base import Stage, StageConfig, TrainerChoice, local_file, register_stage

log = logging.getLogger("align")


class PPOConfig(StageConfig, TrainerChoice):
    """PPO with a value head on the policy (or a separate critic), GAE and a KL penalty to the reference."""

    kind: Literal["ppo"] = "ppo"
    model: ModelSpec = Field(description="Policy to start from (also the frozen reference; with LoRA the base model).")
    prompts: Annotated[str, Ref(output="prompts_train")] = Field(description="Rollout prompts: a stage output or file.")
    max_prompts: int | None = Field(None, ge=1, description="Use at most this many prompts.")
    reward: RewardSpec = Field(description="The reward function.")
    steps: int = Field(20, ge=1, description="PPO steps (one rollout batch each).")
    rollout_batch: int = Field(32, ge=1, description="Responses sampled per step (all processes together).")
    minibatch: int = Field(16, ge=1, description="Responses per optimizer step (all processes together).")
    ppo_epochs: int = Field(2, ge=1, description="Passes over each rollout batch.")
    clip: float = Field(0.2, gt=0, description="Policy ratio clip.")
    value_clip: float = Field(0.2, gt=0, description="Value clip around the rollout values.")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss.")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    kl_coef: float = Field(0.05, ge=0, description="KL penalty coefficient (initial value when adaptive).")
    kl_estimator: Literal["k1", "k3"] = Field("k1", description="Per-token KL estimator in the reward.")
    kl_target: float | None = Field(None, gt=0, description="Set for an adaptive coefficient (Ziegler et al.): target KL.")
    kl_horizon: int = Field(10000, ge=1, description="Adaptive KL horizon (in samples).")
    whiten_advantages: bool = Field(True, description="Whiten advantages per rollout batch.")
    normalize_scores: bool = Field(True, description="Scale scores by their running mean/std over all rollouts so "
                                                     "far (the value head's targets get unit scale; see the trainer).")
    missing_eos_penalty: float = Field(1.0, ge=0, description="Subtracted from the score of a response without EOS.")
    max_new_tokens: int = Field(48, ge=1, description="Tokens sampled per response.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of the rollouts.")
    engine: EngineName = Field("native", description=ENGINE_HELP + " Rollouts only: old log-probs are always the "
                               "trainer's; native keeps the in-process model.generate rollout.")
    critic: Literal["shared", "separate"] = Field("shared", description="Value head on the policy, or a separate critic copy.")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=1e-5), description="Optimisation (lr, clipping, ...).")
    oracle_eval: OracleEvalConfig | None = Field(None, description="World-oracle scores before and after training.")
    eval_samples: int = Field(64, ge=0, description="Held-out prompts sampled for reward / KL / length metrics (0: off).")
    target_distribution: list[WeightedTarget] | None = Field(
        None, description="Attribute-target RL: each rollout prompt asks for a target drawn from this list, written "
                          "after the generation prompt as SteerLM's attribute prefix (start from a SteerLM model); "
                          "with reward.objective: target the reward is closeness to it.")
    marker: str = Field(DEFAULT_MARKER, description="Marker before the attribute label (as SteerLM 1.0 wrote it).")
    eval_target: dict[str, int] = Field(default_factory=lambda: dict(PAPER_TARGET),
                                        description="With target_distribution: the target the oracle evaluation "
                                                    "and held-out samples ask for.")
    steerability: SteerEvalConfig | None = Field(None, description="With target_distribution: steering error on a "
                                                                   "grid of targets before and after training.")

    @model_validator(mode="after")
    def _batches(self) -> PPOConfig:
        if self.rollout_batch % self.minibatch:
            raise ValueError(f"rollout_batch {self.rollout_batch} must be a multiple of minibatch {self.minibatch}")
        if self.reward.objective == "target" and not self.target_distribution:
            raise ValueError("reward.objective target needs target_distribution: the targets the prompts ask for")
        if self.steerability is not None and not self.target_distribution:
            raise ValueError("steerability measures a model that is asked for targets: set target_distribution")
        format_label(self.eval_target)
        return self


@register_stage
class PPOStage(Stage):
    """Actor-critic PPO on the reward function's scalar score."""

    kind = "ppo"
    Config = PPOConfig
    trainer_base = "align.trainers.ppo:PPOTrainer"
    produces_model = True
    distributable = True

    @classmethod
    def check(cls, config: PPOConfig) -> list[str]:
        dist = config.distributed
        if dist is None:
            return []
        if dist.strategy == "deepspeed" and config.train.grad_accum != 1:
            # each PPO minibatch is one optimizer step; DeepSpeed's engine would accumulate grad_accum of them
            return [(f"distributed: ppo under deepspeed takes train.grad_accum 1, not {config.train.grad_accum} "
                     "(a minibatch is one optimizer step: set the minibatch size instead)")]
        world = dist.world_size
        if config.rollout_batch % world or config.minibatch % world:
            return [(f"distributed: rollout_batch {config.rollout_batch} and minibatch {config.minibatch} are "
                     f"global counts and must be multiples of the {world} processes")]
        return []

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data import load_prompts

        return [("prompts", lambda: load_prompts(config.prompts))] if local_file(config.prompts) else []

    def run(self, config: PPOConfig, ctx) -> dict:
        from transformers import set_seed

        from align.data import load_prompts
        from align.distributed import process_state
        from align.evaluation import (
            StageEvaluator,
            policy_sample_metrics,
            reference_for_eval,
        )
        from align.models import load_model, load_saved, save_model
        from align.steerlm.labels import attribute_prefix
        from align.steerlm.steer_eval import load_eval_prompts, steer_metrics
        from align.steerlm.steerability import with_suffix
        from align.trainers.ppo import PPOSettings

        process_state()  # before any model is placed: fixes the backend and this process's device
        set_seed(ctx.seed)
        model, tokenizer = load_model(ctx.resolve_model(config.model), seed=ctx.seed)
        prompts = load_prompts(ctx.resolve(config.prompts, "prompts_train"))[: config.max_prompts]
        reward_fn = build_reward(config.reward, ctx)
        names = set(PPOSettings.__dataclass_fields__)
        settings = PPOSettings(**{k: v for k, v in config.model_dump().items() if k in names})
        trainer = self.build_trainer(config, model, tokenizer, reward_fn, config.train, ctx.work_dir, settings,
                                     seed=ctx.seed)
        metrics: dict = {"data/prompts": float(len(prompts)), "reward/source": config.reward.describe()}
        ref = reference_for_eval(model, trainer.ref_model) if trainer.is_main else None
        evaluator = StageEvaluator(config.oracle_eval if trainer.is_main else None, ctx)
        # asked for eval_target when the policy is trained to follow targets (before too: the same question)
        steer = config.target_distribution is not None
        suffix = attribute_prefix(config.eval_target, config.marker) if steer else ""
        target = dict(config.eval_target) if steer else None

        def evaluate(m, when: str) -> dict:
            out = evaluator.run(m, tokenizer, when, prompt_suffix=suffix)
            out.update(evaluator.headroom(m, tokenizer, temperature=config.temperature, top_p=config.top_p,
                                          prompt_suffix=suffix, seed=ctx.seed + 11, when=when))
            out.update(policy_sample_metrics(m, ref, tokenizer, config, ctx, reward_fn, when, prompt_suffix=suffix,
                                             target=target))
            if config.steerability is not None:
                found = steer_metrics(m, tokenizer, load_eval_prompts(config.steerability, ctx), config.steerability,
                                      config.marker, None, ctx.seed)
                log.info("steerability %s: %s", when, "  ".join(f"{k}={v:.3f}" for k, v in found.items()))
                out.update(found if when == "after" else with_suffix(found, when))
            return out

        if trainer.is_main:
            metrics.update(evaluate(model, "before"))
        metrics.update(trainer.train(prompts))
        if trainer.sharded:  # every process saves (the shards are gathered); rank 0 evaluates the saved model
            trainer.save_pretrained(ctx.work_dir / "model")
            model = load_saved(ctx.work_dir / "model", tokenizer)[0].to(trainer.accelerator.device) \
                if trainer.is_main else None
        else:
            model = trainer.unwrapped_model()
        if trainer.is_main:
            metrics.update(evaluate(model, "after"))
            metrics.update(evaluator.gains(metrics))
            if not trainer.sharded:
                save_model(model, tokenizer, ctx.work_dir / "model", merge_lora=config.model.merge_lora_on_save)
            shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
        return metrics
