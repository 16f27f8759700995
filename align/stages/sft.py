"""Stage `kind: sft`: supervised fine-tuning on chat data, assistant tokens only."""
from __future__ import annotations

import logging
import shutil
from typing import Annotated, Literal

from pydantic import Field, field_validator

from align.config.base import OracleEvalConfig, Ref, TrainConfig
from align.config.model_spec import ModelSpec
from align.stages.base import Stage, StageConfig, TrainerChoice, local_file, register_stage

log = logging.getLogger("align")


class SFTConfig(StageConfig, TrainerChoice):
    """Fine-tune a causal LM on conversations (rows with `messages`, or HelpSteer2 prompt/response)."""

    kind: Literal["sft"] = "sft"
    model: ModelSpec = Field(description="Model to start from.")
    data: Annotated[str, Ref(output="sft")] = Field(description="Conversations: a stage output, file, dir or hub id.")
    split: str | None = Field(None, description="Split of a hub dataset or DatasetDict dir.")
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Hold out this fraction of conversations for eval/loss.")
    min_attributes: dict[str, int] = Field(
        default_factory=dict, description="HelpSteer2 rows only: keep rows rated at least this on each named "
                                          "attribute, e.g. {helpfulness: 3} (default: every row, of every quality).")
    loss_on: Literal["last", "all"] = Field("last", description="Learn the final assistant turn only, or every assistant turn.")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=1e-4), description="Optimisation settings.")
    oracle_eval: OracleEvalConfig | None = Field(None, description="World-oracle scores before and after training.")

    @field_validator("min_attributes")
    @classmethod
    def _known_attributes(cls, value: dict[str, int]) -> dict[str, int]:
        from align.attributes import ATTRIBUTES, MAX_VALUE, MIN_VALUE

        for name, low in value.items():
            if name not in ATTRIBUTES:
                raise ValueError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTES)}")
            if not MIN_VALUE <= low <= MAX_VALUE:
                raise ValueError(f"{name}: a minimum rating must be in {MIN_VALUE}..{MAX_VALUE}, got {low}")
        return value


def tokenize_all(tokenizer, conversations, train_cfg, loss_on: str):
    """Tokenize conversations; count what was truncated or dropped (over-length)."""
    from align.chat import tokenize_conversation

    examples, truncated, dropped = [], 0, 0
    for conv in conversations:
        ex = tokenize_conversation(tokenizer, conv, max_length=train_cfg.max_length,
                                   over_length=train_cfg.over_length, which=loss_on)
        if ex is None:
            dropped += 1
            continue
        truncated += ex.truncated
        examples.append(ex)
    stats = {"data/rows": float(len(conversations)), "data/truncated": float(truncated), "data/dropped": float(dropped)}
    if truncated or dropped:
        log.warning("%d sequences truncated, %d dropped (longer than max_length=%d)", truncated, dropped,
                    train_cfg.max_length)
    return examples, stats


def run_oracle_eval(model, tokenizer, cfg: OracleEvalConfig | None, ctx, when: str, prompt_suffix: str = "") -> dict:
    """Oracle (and RM) figures of greedy answers on the held-out prompts (align.evaluation.StageEvaluator)."""
    from align.evaluation import StageEvaluator

    return StageEvaluator(cfg, ctx).run(model, tokenizer, when, prompt_suffix)


def _filtered(conversations: list, source: str, min_attributes: dict) -> list:
    from align.errors import DataError

    if not conversations and min_attributes:
        raise DataError(f"{source}: no row is rated at least min_attributes; lower the minimums")
    return conversations


@register_stage
class SFTStage(Stage):
    """Supervised fine-tuning (loss on assistant tokens only)."""

    kind = "sft"
    Config = SFTConfig
    trainer_base = "align.trainers.sft:SFTTrainer"
    produces_model = True
    distributable = True

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data import load_conversations

        def load():
            return _filtered(load_conversations(config.data, config.split, min_attributes=config.min_attributes),
                             config.data, config.min_attributes)

        return [("data", load)] if local_file(config.data) else []

    def run(self, config: SFTConfig, ctx) -> dict:
        import random

        from transformers import set_seed

        from align.data import load_conversations
        from align.models import load_model, load_saved

        set_seed(ctx.seed)
        model, tokenizer = load_model(ctx.resolve_model(config.model), seed=ctx.seed)
        source = ctx.resolve(config.data, "sft")
        conversations = _filtered(load_conversations(source, config.split, min_attributes=config.min_attributes),
                                  source, config.min_attributes)
        examples, metrics = tokenize_all(tokenizer, conversations, config.train, config.loss_on)
        eval_examples = None
        if config.eval_fraction > 0:
            random.Random(ctx.seed).shuffle(examples)
            n_eval = max(1, int(len(examples) * config.eval_fraction))
            eval_examples, examples = examples[:n_eval], examples[n_eval:]
        trainer = self.build_trainer(config, model, tokenizer, config.train, ctx.work_dir, seed=ctx.seed,
                                     cpu=config.model.device == "cpu")
        model.to(trainer.accelerator.device)  # evaluate where we train
        if trainer.is_main:
            metrics.update(run_oracle_eval(model, tokenizer, config.oracle_eval, ctx, "before"))
        metrics.update(trainer.train(examples, eval_examples))
        trainer.save_pretrained(ctx.work_dir / "model", merge_lora=config.model.merge_lora_on_save)
        if trainer.is_main:
            # Score the published artifact, so the figure holds whatever engine trained it.
            saved, _ = load_saved(ctx.work_dir / "model", tokenizer)
            metrics.update(run_oracle_eval(saved.to(trainer.accelerator.device), tokenizer, config.oracle_eval, ctx,
                                           "after"))
            shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
        return metrics

