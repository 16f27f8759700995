"""Stage `kind: tokenizer`: a byte-level BPE tokenizer with a chat template, trained on your files.

What a `tiny:` model needs when the data is your own: `model: {tiny: {...}, tokenizer: tok}`.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from align.config.base import Ref
from align.stages.base import Stage, StageConfig, local_file, register_stage
from align.tokenizer_training import MIN_VOCAB


class TokenizerConfig(StageConfig):
    """Train a tokenizer on data files (every string of every row, or a text file's lines)."""

    kind: Literal["tokenizer"] = "tokenizer"
    data: Annotated[list[str], Ref()] = Field(
        description="Files (.jsonl/.json/.parquet rows, .txt/.md lines), save_to_disk dirs, hub ids or stage "
                    "outputs (e.g. world.sft) to train on; a single string is one source.")
    vocab_size: int = Field(4096, ge=MIN_VOCAB, le=1_000_000, description="Vocabulary size, special tokens included "
                                                                       "(smaller if the text has fewer merges).")
    min_frequency: int = Field(2, ge=0, description="A merge must occur at least this often.")
    model_max_length: int = Field(2048, ge=16, description="The tokenizer's model_max_length.")

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list) and not value:
            raise ValueError("name at least one file to train on")
        return value


@register_stage
class TokenizerStage(Stage):
    """Train a byte-level BPE tokenizer with a chat template on your own data."""

    kind = "tokenizer"
    Config = TokenizerConfig

    @classmethod
    def outputs(cls, config) -> dict[str, str]:
        return {"tokenizer": "tokenizer"}

    @classmethod
    def input_checks(cls, config) -> list:
        from align.data.texts import load_texts

        return [(f"data[{i}]", lambda s=s: load_texts(s)) for i, s in enumerate(config.data) if local_file(s)]

    def run(self, config: TokenizerConfig, ctx) -> dict:
        import statistics

        from align.data.texts import load_texts
        from align.tokenizer_training import train_chat_tokenizer

        texts = [t for source in config.data for t in load_texts(ctx.resolve(source))]
        tok = train_chat_tokenizer(texts, ctx.work_dir / "tokenizer", config.vocab_size,
                                   min_frequency=config.min_frequency, model_max_length=config.model_max_length)
        lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        ctx.log.info("tokenizer: %d tokens from %d texts; median %d tokens per text", len(tok), len(texts),
                     statistics.median(lengths))
        return {"tokenizer/vocab_size": float(len(tok)), "data/texts": float(len(texts)),
                "data/chars": float(sum(map(len, texts))),
                "tokenizer/median_tokens_per_text": float(statistics.median(lengths)),
                "tokenizer/chars_per_token": sum(map(len, texts)) / max(sum(lengths), 1)}
