"""Build the reward model a stage trains: from a causal LM (any source load_model takes) or
from an existing reward model (regression RM -> Bradley-Terry, head included), plus LoRA."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from align.attributes import ATTRIBUTES

log = logging.getLogger("align")


def is_reward_model_dir(path: str | None) -> bool:
    """True for our own saved RM or a sequence-classification checkpoint directory."""
    if not path or not (Path(path) / "config.json").is_file():
        return False
    cfg = json.loads((Path(path) / "config.json").read_text())
    from rewards.model import AttributeRewardConfig

    archs = cfg.get("architectures") or []
    return cfg.get("model_type") == AttributeRewardConfig.model_type or any(
        a.endswith("ForSequenceClassification") for a in archs)


def build_reward_model(spec, attributes: list[str] | None, *, seed: int = 0):
    """(model, tokenizer) for a resolved ModelSpec. `attributes` None: the RM's own, or all five."""
    from align.models import load_model, load_tokenizer
    from align.errors import ConfigError
    from rewards.model import AttributeRewardModel, load_reward_model

    base_spec = spec.model_copy(update={"lora": None})
    if is_reward_model_dir(spec.path):
        tokenizer = load_tokenizer(base_spec)
        model = load_reward_model(spec.path)
        if attributes is not None and list(attributes) != model.attributes:
            raise ConfigError([f"attributes {list(attributes)} differ from the reward model's own "
                               f"{model.attributes} at {spec.path}; leave `attributes` out to keep them"])
        log.info("starting from reward model %s (attributes: %s)", spec.path, ", ".join(model.attributes))
    else:
        lm, tokenizer = load_model(base_spec, seed=seed)
        model = AttributeRewardModel.from_causal_lm(lm, list(attributes or ATTRIBUTES))
    model.config.pad_token_id = tokenizer.pad_token_id
    if spec.lora is not None:
        model = apply_reward_lora(model, spec.lora)
    return model, tokenizer


def apply_reward_lora(model, lora):
    """LoRA on the backbone's linear layers; the head is trained in full (peft modules_to_save)."""
    from peft import LoraConfig, get_peft_model
    from torch import nn

    targets = lora.target_modules
    if targets == "all-linear":
        targets = sorted({name.rsplit(".", 1)[-1] for name, mod in model.backbone.named_modules()
                          if isinstance(mod, nn.Linear)})
    cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                     exclude_modules=["head"], modules_to_save=["head"])
    model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return model
