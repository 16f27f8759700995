"""Stage `kind: sft`: supervised fine-tuning on chat data, assistant tokens only."""
from __future__ import annotations

import logging
import shutil
from typing import Annotated, Literal

from pydantic import Field

from align.config.base import OracleEvalConfig, Ref, TrainConfig
from align.config.model_spec import ModelSpec
from align.stages.base import Stage, StageConfig, local_file, register_stage

log = logging.getLogger("align")


class SFTConfig(StageConfig):
    """Fine-tune a causal LM on conversations (rows with `messages`, or HelpSteer2 prompt/response)."""

    kind: Literal["sft"] = "sft"
    model: ModelSpec = Field(description="Model to start from.")
    data: Annotated[str, Ref(output="sft")] = Field(description="Conversations: a stage output, file, dir or hub id.")
    split: str | None = Field(None, description="Split of a hub dataset or DatasetDict dir.")
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Hold out this fraction of conversations for eval/loss.")
    loss_on: Literal["last", "all"] = Field("last", description="Learn the final assistant turn only, or every assistant turn.")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=1e-4), description="Optimisation settings.")
    oracle_eval: OracleEvalConfig | None = Field(None, description="World-oracle scores before and after training.")


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


@register_stage
class SFTStage(Stage):
    """Supervised fine-tuning (loss on assistant tokens only)."""

    kind = "sft"
    Config = SFTConfig
    produces_model = True
    distributable = True

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data import load_conversations

        return [("data", lambda: load_conversations(config.data, config.split))] if local_file(config.data) else []

    def run(self, config: SFTConfig, ctx) -> dict:
        import random

        from transformers import set_seed

        from align.data import load_conversations
        from align.models import load_model, load_saved
        from align.trainers.sft import SFTTrainer

        set_seed(ctx.seed)
        model, tokenizer = load_model(ctx.resolve_model(config.model), seed=ctx.seed)
        conversations = load_conversations(ctx.resolve(config.data, "sft"), config.split)
        examples, metrics = tokenize_all(tokenizer, conversations, config.train, config.loss_on)
        eval_examples = None
        if config.eval_fraction > 0:
            random.Random(ctx.seed).shuffle(examples)
            n_eval = max(1, int(len(examples) * config.eval_fraction))
            eval_examples, examples = examples[:n_eval], examples[n_eval:]
        trainer = SFTTrainer(model, tokenizer, config.train, ctx.work_dir, seed=ctx.seed,
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

