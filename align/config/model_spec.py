"""How a stage names the model it starts from."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from align.config.base import LoRASpec, Ref, StrictModel


class TinyModelSpec(StrictModel):
    """A small Llama-style model built from a config (random init), for the synthetic world."""

    hidden_size: int = Field(128, ge=8, description="Hidden size.")
    layers: int = Field(4, ge=1, description="Number of decoder layers.")
    heads: int = Field(4, ge=1, description="Attention heads.")
    kv_heads: int | None = Field(None, ge=1, description="Key/value heads (GQA); default = heads.")
    intermediate_size: int | None = Field(None, ge=8, description="MLP width; default 3 x hidden_size.")
    max_position_embeddings: int = Field(512, ge=16, description="Longest sequence the model supports.")

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyModelSpec":
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by heads {self.heads}")
        if self.kv_heads and self.heads % self.kv_heads:
            raise ValueError(f"heads {self.heads} must be divisible by kv_heads {self.kv_heads}")
        return self


class ModelSpec(StrictModel):
    """Exactly one of `path` (hub id or local dir), `from` (an earlier stage) or `tiny`.

    A plain string is shorthand: an earlier stage's name means `from`, anything else `path`.
    """

    path: str | None = Field(None, description="Hub id or local directory (or a .gguf file).")
    from_: Annotated[str | None, Ref(output="model", path_ok=False)] = Field(
        None, alias="from", description="Start from the model an earlier stage produced."
    )
    tiny: TinyModelSpec | None = Field(None, description="Build a small random Llama-style model.")
    tokenizer: Annotated[str | None, Ref(output="tokenizer")] = Field(
        None, description="Tokenizer: stage ref, hub id or dir (default: the model's own)."
    )
    chat_template: str | None = Field(
        None, description="Chat template for a tokenizer that has none (or to replace its own): a Jinja string, "
                          "or the path of a .jinja file.")
    gguf_file: str | None = Field(None, description="GGUF file name inside `path` (SPEC.md section 7).")
    revision: str | None = Field(None, description="Hub revision.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="Weights dtype.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto': the GPU when there is one (per process under a launcher), else the CPU; 'cpu' forces it."
    )
    lora: LoRASpec | None = Field(None, description="Train LoRA adapters instead of all weights.")
    trust_remote_code: bool = Field(False, description="Run model code from the hub (off unless you trust it).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        return value

    @property
    def merge_lora_on_save(self) -> bool:
        """Whether a trained model is saved as merged full weights (always so without LoRA)."""
        return self.lora is None or self.lora.merge_on_save

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "ModelSpec":
        given = [k for k, v in (("path", self.path), ("from", self.from_), ("tiny", self.tiny)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, from, tiny (got {given or 'none'})")
        if self.tiny is not None and self.tokenizer is None:
            raise ValueError("a tiny model needs a tokenizer (e.g. tokenizer: world)")
        return self
