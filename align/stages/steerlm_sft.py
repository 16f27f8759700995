"""Stage `kind: steerlm_sft` (SteerLM 1.0, SPEC.md section 3): attribute-conditioned SFT.

Each HelpSteer2 row becomes the chat `prompt -> assistant: <marker><labels>\\n<response>`
in the model's own template; the loss covers the response only. Labels come from the data,
or from a reward model (predictions clipped to 0..4 and rounded) when `labels: reward_model`.
"""
from __future__ import annotations

import logging
import shutil
from typing import Annotated, Literal

from pydantic import Field, model_validator

from align.attributes import ATTRIBUTES
from align.config.base import OracleEvalConfig, Ref, TrainConfig
from align.config.model_spec import ModelSpec
from align.stages.base import Stage, StageConfig, TrainerChoice, local_file, register_stage
from align.steerlm.labels import DEFAULT_MARKER
from align.steerlm.steer_eval import (
    PAPER_TARGET,
    SteerEvalConfig,
    load_eval_prompts,
    load_scorer,
    steer_metrics,
)

log = logging.getLogger("align")



class SteerLMSFTConfig(StageConfig, TrainerChoice):
    """Attribute-conditioned SFT on HelpSteer2-style rows (prompt, response, five attributes)."""

    kind: Literal["steerlm_sft"] = "steerlm_sft"
    model: ModelSpec = Field(description="Model to start from (usually the SFT stage).")
    data: Annotated[str, Ref(output="helpsteer_train")] = Field(description="HelpSteer2 rows: stage output, file, hub id.")
    split: str | None = Field(None, description="Split of a hub dataset or DatasetDict dir.")
    labels: Literal["data", "reward_model"] = Field("data", description="Where the attribute labels come from.")
    reward_model: Annotated[str | None, Ref(output="model")] = Field(
        None, description="Reward model (stage or dir) for `labels: reward_model`, and for steerability figures.")
    attributes: list[str] = Field(default_factory=lambda: list(ATTRIBUTES), description="Attributes in the label string.")
    marker: str = Field(DEFAULT_MARKER, description="Text before the label string at the start of the assistant turn.")
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Hold out this fraction of rows for eval/loss.")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=1e-4), description="Optimisation settings.")
    oracle_eval: OracleEvalConfig | None = Field(None, description="Oracle scores of answers at `eval_target`.")
    eval_target: dict[str, int] = Field(default_factory=lambda: dict(PAPER_TARGET),
                                        description="Attributes requested in the oracle eval.")
    steerability: SteerEvalConfig | None = Field(None, description="Steering error on a grid of targets after training.")

    @model_validator(mode="after")
    def _check(self) -> "SteerLMSFTConfig":
        bad = [a for a in self.attributes if a not in ATTRIBUTES]
        if bad:
            raise ValueError(f"unknown attributes {bad}; known: {', '.join(ATTRIBUTES)}")
        if self.labels == "reward_model" and not self.reward_model:
            raise ValueError("labels: reward_model needs `reward_model`")
        return self


def row_labels(rows, config, ctx) -> list[dict[str, int]]:
    """Attribute labels per row, from the data or the reward model (clipped and rounded)."""
    if config.labels == "data":
        return [{a: r.attributes[a] for a in config.attributes if r.attributes.get(a) is not None} for r in rows]
    from align.steerlm.labels import clip_round

    scorer = load_scorer(ctx.resolve(config.reward_model, "model"))
    pred = scorer.predict([r.messages for r in rows], [r.response for r in rows])  # [N, A]
    cols = {a: clip_round(pred[:, scorer.attributes.index(a)].tolist()) for a in config.attributes}
    return [{a: cols[a][i] for a in config.attributes} for i in range(len(rows))]


@register_stage
class SteerLMSFTStage(Stage):
    """SteerLM 1.0: attribute-conditioned SFT (loss on the response only)."""

    kind = "steerlm_sft"
    Config = SteerLMSFTConfig
    trainer_base = "align.trainers.sft:SFTTrainer"
    produces_model = True
    distributable = True

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data import load_helpsteer

        require = config.attributes if config.labels == "data" else ()
        return [("data", lambda: load_helpsteer(config.data, config.split, require=require))] \
            if local_file(config.data) else []

    def run(self, config: SteerLMSFTConfig, ctx) -> dict:
        import random

        from transformers import set_seed

        from align.data import load_helpsteer
        from align.evaluation import StageEvaluator
        from align.models import load_model, load_saved
        from align.steerlm.labels import attribute_prefix, check_marker
        from align.steerlm.sequences import tokenize_response

        set_seed(ctx.seed)
        model, tok = load_model(ctx.resolve_model(config.model), seed=ctx.seed)
        check_marker(tok, config.marker)
        require = config.attributes if config.labels == "data" else ()
        rows = load_helpsteer(ctx.resolve(config.data, "helpsteer_train"), config.split, require=require)
        labels = row_labels(rows, config, ctx)
        examples, truncated = [], 0
        for row, lab in zip(rows, labels):
            ex = tokenize_response(tok, row.messages, row.response, attribute_prefix(lab, config.marker),
                                   max_length=config.train.max_length)
            if ex.truncated and config.train.over_length == "drop":
                continue
            truncated += ex.truncated
            examples.append(ex)
        metrics = {"data/rows": float(len(rows)), "data/truncated": float(truncated),
                   "data/dropped": float(len(rows) - len(examples))}
        eval_examples = None
        if config.eval_fraction > 0:
            random.Random(ctx.seed).shuffle(examples)
            n_eval = max(1, int(len(examples) * config.eval_fraction))
            eval_examples, examples = examples[:n_eval], examples[n_eval:]
        trainer = self.build_trainer(config, model, tok, config.train, ctx.work_dir, seed=ctx.seed)
        evaluator = StageEvaluator(config.oracle_eval if trainer.is_main else None, ctx)
        if trainer.is_main:  # the starting (unconditioned) model: what asking for eval_target should beat
            metrics.update(evaluator.run(model, tok, "before"))
            metrics.update(evaluator.headroom(model, tok, temperature=1.0, seed=ctx.seed + 11))
        metrics.update(trainer.train(examples, eval_examples))
        # Every process saves (ZeRO-3 / FSDP gather the shards); the main one evaluates the model,
        # reloaded from the saved files when it was sharded.
        trainer.save_pretrained(ctx.work_dir / "model", merge_lora=config.model.merge_lora_on_save)
        if trainer.is_main:
            model = trainer.unwrapped_model()
            if trainer.sharded:
                model, _ = load_saved(ctx.work_dir / "model", tok)
                model.to(trainer.accelerator.device)
            suffix = attribute_prefix(config.eval_target, config.marker)
            metrics.update(evaluator.run(model, tok, "after", prompt_suffix=suffix))
            metrics.update(evaluator.headroom(model, tok, temperature=1.0, prompt_suffix=suffix, seed=ctx.seed + 11,
                                              when="after"))
            metrics.update(evaluator.gains(metrics))
            if config.steerability is not None:
                scorer = load_scorer(ctx.resolve(config.reward_model, "model")) if config.reward_model else None
                found = steer_metrics(model, tok, load_eval_prompts(config.steerability, ctx), config.steerability,
                                      config.marker, scorer, ctx.seed)
                log.info("steerability: %s", "  ".join(f"{k}={v:.3f}" for k, v in found.items()))
                metrics.update(found)
            shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
        return metrics
