"""Model loading from every source the recipes accept, LoRA, and trackers."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from align.config.model_spec import ModelSpec
from align.errors import AlignError
from align.models import load_model, save_model
from align.recipe import load_recipe
from align.runner import Runner
from tests.helpers import TINY, sft_stage, world_stage, write_recipe


def test_tiny_model_is_seeded_and_sized(world_dir):
    spec = ModelSpec(tiny=TINY, tokenizer=str(world_dir / "tokenizer"))
    a, tok = load_model(spec, seed=1)
    b, _ = load_model(spec, seed=1)
    c, _ = load_model(spec, seed=2)
    assert a.config.vocab_size == len(tok) and a.config.hidden_size == TINY["hidden_size"]
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_local_directory_round_trip(world_dir, tmp_path):
    model, tok = load_model(ModelSpec(tiny=TINY, tokenizer=str(world_dir / "tokenizer")))
    save_model(model, tok, tmp_path / "m")
    again, tok2 = load_model(ModelSpec(path=str(tmp_path / "m")))
    ids = torch.tensor([tok("What is 1 plus 2?")["input_ids"]])
    assert torch.equal(model(ids).logits, again(ids).logits)
    assert tok2.chat_template == tok.chat_template


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(AlignError, match="nope: no such file or directory"):
        load_model(ModelSpec(path=str(tmp_path / "nope")))


def test_lora_trains_adapters_and_saves_merged(tmp_path):
    sft = sft_stage(max_steps=4, report_to=["tensorboard"])
    sft["model"]["lora"] = {"r": 4, "alpha": 8}
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft])
    Runner(load_recipe(path)).run()
    model_dir = tmp_path / "run" / "sft" / "model"
    merged = AutoModelForCausalLM.from_pretrained(model_dir)  # a plain HF model: adapters merged
    assert not any("lora" in n for n, _ in merged.named_parameters())
    # the tracker wrote TensorBoard event files
    assert list((tmp_path / "run" / "sft").rglob("events.out.tfevents*"))
    metrics = json.loads((tmp_path / "run" / "sft" / "metrics.json").read_text())
    assert metrics["train/steps"] == 4
