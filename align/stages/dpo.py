"""Stage `kind: dpo`: DPO on pairs from ratings, from a preference set, or from reward-ranked
samples of the policy itself (iterative DPO), SPEC.md section 5."""
from __future__ import annotations

import logging
import shutil
from typing import Annotated, Literal

from pydantic import Field, model_validator

from align.config.base import OracleEvalConfig, Ref, StrictModel, TrainConfig
from align.config.model_spec import ModelSpec
from align.engines.base import ENGINE_HELP, EngineName
from align.errors import DataError
from align.evaluation import policy_sample_metrics, reference_for_eval
from align.reward_sources import RewardSpec, build_reward
from align.stages.base import Stage, StageConfig, TrainerChoice, local_file, register_stage

log = logging.getLogger("align")


class PairsSpec(StrictModel):
    """Where preference pairs come from."""

    source: Literal["ratings", "preference", "policy"] = Field(
        "ratings", description="ratings: HelpSteer2 rows (higher attribute = chosen); preference: chosen/rejected "
                               "or HelpSteer2-Preference rows; policy: iterative DPO on the policy's own samples.")
    data: Annotated[str, Ref()] = Field(
        description="ratings: HelpSteer2 rows (world.helpsteer_train); preference: pairs (world.preference); "
                    "policy: prompts (world.prompts_train). A stage output, file, dir or hub id.")
    split: str | None = Field(None, description="Split of a hub dataset or DatasetDict dir.")
    attribute: str = Field("helpfulness", description="ratings: the attribute that decides chosen vs rejected.")
    match: list[str] = Field(default_factory=list, description="ratings: pair only responses rated equal on these "
                                                               "attributes (e.g. [verbosity]: no length bias).")
    max_pairs: int | None = Field(None, ge=1, description="ratings/preference: use at most this many pairs, drawn "
                                                          "round-robin over the prompts (seeded), not the first ones.")
    max_pairs_per_prompt: int | None = Field(None, ge=1, description="ratings/preference: at most this many pairs "
                                                                     "per prompt (k rated responses give k(k-1)/2).")
    rounds: int = Field(2, ge=1, description="policy: sampling + training rounds.")
    prompts_per_round: int = Field(128, ge=1, description="policy: prompts sampled per round.")
    samples_per_prompt: int = Field(4, ge=2, description="policy: responses per prompt, paired by the reward.")
    pairing: Literal["best_worst", "best_rest", "all"] | None = Field(
        None, description="Which two responses of a prompt pair up. best_worst: top vs bottom (policy: one pair a "
                          "prompt, the paper's iterative DPO; the policy default); best_rest: the top-rated or "
                          "top-scored vs every lower one, so the chosen side is always a prompt's best answer "
                          "(UltraFeedback's binarisation); all: every two that differ (the ratings default). Ties "
                          "and identical texts never pair.")
    temperature: float = Field(0.7, gt=0, description="policy: sampling temperature (SPEC: 0.7).")
    top_p: float = Field(0.9, gt=0, le=1, description="policy: nucleus sampling (SPEC: 0.9).")
    max_new_tokens: int = Field(48, ge=1, description="policy: tokens per sampled response.")
    engine: EngineName = Field("native", description="policy: " + ENGINE_HELP + " Weights synced after each round.")


class DPOConfig(StageConfig, TrainerChoice):
    """Direct preference optimisation against the starting model as a frozen reference."""

    kind: Literal["dpo"] = "dpo"
    model: ModelSpec = Field(description="Policy to start from; it is also the reference (with LoRA: the base model).")
    pairs: PairsSpec = Field(description="Preference pairs.")
    reward: RewardSpec | None = Field(None, description="Reward function: ranks samples (source: policy) and is "
                                                        "reported on held-out samples.")
    beta: float = Field(0.1, gt=0, description="DPO beta (SPEC paper recipe: 1e-3 at 70B scale).")
    loss_type: Literal["sigmoid", "ipo", "margin", "scaled"] = Field(
        "sigmoid", description="sigmoid (DPO), ipo, or margin / scaled by the pair's preference strength.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Label smoothing of the sigmoid loss (cDPO); "
                                                                   "sigmoid only.")
    ipo_normalize: Literal["tokens", "sum"] = Field(
        "tokens", description="IPO on per-token mean log-ratios (TRL's form, confirmed by the IPO authors: beta means "
                              "the same at every length) or on sums (the paper's equation as written).")
    sft_weight: float = Field(0.0, ge=0, description="RPO: add this times the chosen response's per-token NLL "
                                                     "(anchors the chosen likelihood; TRL's rpo_alpha).")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=1e-5), description="Optimisation settings.")
    oracle_eval: OracleEvalConfig | None = Field(None, description="World-oracle scores before and after training.")
    eval_samples: int = Field(64, ge=0, description="Held-out prompts sampled for reward / KL / length metrics (0: off).")

    @model_validator(mode="after")
    def _reward_for_policy(self) -> DPOConfig:
        if self.pairs.source == "policy" and self.reward is None:
            raise ValueError("pairs.source: policy ranks samples with a reward: set reward (model: rm or oracle: ...)")
        if self.label_smoothing and self.loss_type != "sigmoid":
            raise ValueError(f"label_smoothing applies to loss_type sigmoid only (cDPO); loss_type {self.loss_type} "
                             "would ignore it")
        return self


# ---- pairs ---------------------------------------------------------------------------------
def static_pairs(spec: PairsSpec, ctx):
    from align.data import (
        load_helpsteer,
        load_preference_pairs,
        pairs_from_ratings,
        spread_pairs,
    )

    source = ctx.resolve(spec.data, "helpsteer_train" if spec.source == "ratings" else "preference")
    if spec.source == "ratings":
        pairs = pairs_from_ratings(load_helpsteer(source, spec.split), spec.attribute, spec.match,
                                   spec.pairing or "all")
        if not pairs:
            matched = f" and equal on {', '.join(spec.match)}" if spec.match else ""
            raise DataError(f"{source}: no preference pairs from ratings: no prompt has two responses rated "
                            f"differently on {spec.attribute}{matched}")
    else:
        pairs = load_preference_pairs(source, spec.split)
    return spread_pairs(pairs, spec.max_pairs, spec.max_pairs_per_prompt, seed=ctx.seed)


def policy_pairs(model, tokenizer, prompts, spec: PairsSpec, reward_fn, seed: int, engine=None):
    """Iterative DPO pairs: n samples per prompt, paired by the reward as `spec.pairing` says (ties dropped).
    Strength = the reward gap (used by the margin and scaled losses). `engine`: an
    `align.engines.SamplingEngine` to sample with (None: `align.generation.generate` on `model`)."""
    from align.data import PreferencePair, flatten_messages
    from align.data.pairs import pair_indices
    from align.generation import SamplingConfig, generate

    pairing = spec.pairing or "best_worst"

    sampling = SamplingConfig(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, top_p=spec.top_p,
                              n=spec.samples_per_prompt, batch_size=32)
    samples = (generate(model, tokenizer, prompts, sampling, seed=seed) if engine is None
               else engine.generate_text(prompts, sampling, seed=seed))
    flat_p = [p for p, s in zip(prompts, samples) for _ in s]
    flat_r = [r for s in samples for r in s]
    scores = reward_fn(flat_p, flat_r)
    pairs, k = [], 0
    for p, s in zip(prompts, samples):
        sc = scores[k : k + len(s)]
        k += len(s)
        messages = flatten_messages(p)
        chosen = [(i, j) for i, j in pair_indices(sc, pairing) if s[i] != s[j]]
        for i, j in chosen[:1] if pairing == "best_worst" else chosen:  # best_worst: one pair a prompt (the paper's)
            pairs.append(PreferencePair(messages, p, s[i], s[j], float(sc[i] - sc[j])))
    return pairs, float(sum(scores) / max(len(scores), 1))


def _sampling(spec: PairsSpec) -> dict:
    """The stage's sampling settings for the headroom figures (static pairs sample nothing: temperature 1)."""
    if spec.source == "policy":
        return {"temperature": spec.temperature, "top_p": spec.top_p}
    return {"temperature": 1.0, "top_p": 1.0}


@register_stage
class DPOStage(Stage):
    """DPO / IPO / margin / scaled on static pairs, or iterative DPO on RM-ranked policy samples."""

    kind = "dpo"
    Config = DPOConfig
    trainer_base = "align.trainers.dpo:DPOTrainer"
    produces_model = True
    distributable = True

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data import load_helpsteer, load_preference_pairs, load_prompts

        spec = config.pairs
        load = {"ratings": lambda: load_helpsteer(spec.data, spec.split),
                "preference": lambda: load_preference_pairs(spec.data, spec.split),
                "policy": lambda: load_prompts(spec.data, spec.split)}[spec.source]
        return [("pairs.data", load)] if local_file(spec.data) else []

    def run(self, config: DPOConfig, ctx) -> dict:
        import random

        from transformers import set_seed

        from align.data import load_prompts
        from align.evaluation import StageEvaluator
        from align.models import load_model, load_saved, save_model
        from align.trainers.dpo import tokenize_pair

        set_seed(ctx.seed)
        model, tokenizer = load_model(ctx.resolve_model(config.model), seed=ctx.seed)
        reward_fn = build_reward(config.reward, ctx) if config.reward is not None else None
        ref = reference_for_eval(model)
        metrics: dict = {"pairs/source": config.pairs.source}
        if config.reward is not None:
            metrics["reward/source"] = config.reward.describe()
        elif config.pairs.source == "ratings":
            metrics["reward/source"] = f"ratings:{config.pairs.attribute}"
        from align.distributed import process_state

        state = process_state()  # evaluations and saving happen once, on the main process
        evaluator = StageEvaluator(config.oracle_eval if state.is_main_process else None, ctx)
        if state.is_main_process:
            metrics.update(evaluator.run(model, tokenizer, "before"))
            metrics.update(evaluator.headroom(model, tokenizer, **_sampling(config.pairs), seed=ctx.seed + 11))
            metrics.update(policy_sample_metrics(model, ref, tokenizer, config, ctx, reward_fn, "before"))
        spec = config.pairs
        if spec.source == "policy":
            prompts = load_prompts(ctx.resolve(spec.data, "prompts_train"), spec.split)
            random.Random(ctx.seed).shuffle(prompts)
            rounds = spec.rounds
        else:
            pairs, rounds = static_pairs(spec, ctx), 1
        saved = False  # whether ctx.work_dir/model already holds the current weights
        for r in range(rounds):
            if spec.source == "policy":
                chunk = [prompts[(r * spec.prompts_per_round + i) % len(prompts)] for i in range(spec.prompts_per_round)]
                from align.engines import reuse_or_start  # spec.engine: started once, synced each round

                self.sampler = reuse_or_start(getattr(self, "sampler", None), spec.engine, model, tokenizer,
                                              seed=ctx.seed)
                pairs, mean_reward = policy_pairs(model, tokenizer, chunk, spec, reward_fn, ctx.seed + r,
                                                  engine=self.sampler)
                metrics[f"round{r}/sample_reward"] = mean_reward
                metrics[f"round{r}/pairs"] = float(len(pairs))
                log.info("round %d: %d pairs from %d prompts, mean sample reward %.3f", r, len(pairs), len(chunk),
                         mean_reward)
            examples = [e for p in pairs if (e := tokenize_pair(tokenizer, p.messages, p.chosen, p.rejected,
                                                                 p.strength, config.train.max_length)) is not None]
            metrics["data/pairs"] = metrics.get("data/pairs", 0.0) + len(examples)
            if not examples and spec.source == "policy":
                log.warning("round %d: every prompt's samples tied under the reward: no pairs, round skipped", r)
                continue
            # Reference = the policy at the start of this round (round 0: the starting model);
            # with LoRA it is always the base model (adapter disabled).
            trainer = self.build_trainer(config, model, tokenizer, config.train, ctx.work_dir / f"round{r}" if rounds > 1 else ctx.work_dir,
                                 beta=config.beta, loss_type=config.loss_type, label_smoothing=config.label_smoothing,
                                 sft_weight=config.sft_weight, ipo_normalize=config.ipo_normalize,
                                 seed=ctx.seed + r)
            trainer.precompute_reference(examples)
            metrics.update(trainer.train(examples))
            if trainer.sharded:
                # ZeRO / FSDP: gather the shards into a saved model (every process takes part) and go
                # on with whole weights, which the evaluations and the next round's sampling need.
                trainer.save_pretrained(ctx.work_dir / "model", merge_lora=config.model.merge_lora_on_save)
                model, _ = load_saved(ctx.work_dir / "model", tokenizer)
            else:
                model = trainer.unwrapped_model()
            saved = trainer.sharded
            if trainer.is_main:
                shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
        if state.is_main_process:
            metrics.update(evaluator.run(model, tokenizer, "after"))
            metrics.update(evaluator.headroom(model, tokenizer, **_sampling(config.pairs), seed=ctx.seed + 11,
                                              when="after"))
            metrics.update(policy_sample_metrics(model, ref, tokenizer, config, ctx, reward_fn, "after"))
            metrics.update(evaluator.gains(metrics))
            if not saved:  # a sharded round already wrote these weights
                save_model(model, tokenizer, ctx.work_dir / "model", merge_lora=config.model.merge_lora_on_save)
        state.wait_for_everyone()
        return metrics

