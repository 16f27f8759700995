"""The reward model's last layer at the last token only (rewards/last_token_layer.py): the full
layer's rewards and gradients, or the full layer itself where the path does not apply."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rewards import last_token_layer
from rewards.model import AttributeRewardModel


def _reward_model(cls=LlamaForCausalLM, config_cls=LlamaConfig, attn="sdpa", **overrides) -> AttributeRewardModel:
    config = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=128, pad_token_id=0)
    config.update(overrides)
    torch.manual_seed(0)
    lm = cls(config_cls(**config, attn_implementation=attn))
    with torch.no_grad():  # random biases, so a bias left out of the path would show
        for p in lm.parameters():
            if p.dim() == 1 and not torch.all(p == 1):
                p.normal_(0, 0.1)
    return AttributeRewardModel.from_causal_lm(lm)


def _batch(left: bool):
    lengths = [3, 9, 5, 7]
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    g = torch.Generator().manual_seed(1)
    for row, n in enumerate(lengths):
        span = slice(-n, None) if left else slice(0, n)
        ids[row, span] = torch.randint(1, 97, (n,), generator=g)
        mask[row, span] = 1
    return ids, mask


def _rewards_and_grads(model, ids, mask, lean: bool):
    model = copy.deepcopy(model).train()
    model.last_token_only = lean
    rewards = model(input_ids=ids, attention_mask=mask).rewards
    (rewards * torch.linspace(-1, 1, rewards.shape[1])).sum().backward()
    return rewards.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("overrides", [
    {},
    {"num_key_value_heads": 2},                                  # grouped-query attention
    {"attention_bias": True, "mlp_bias": True},                  # biases in every projection
    {"head_dim": 8},                                             # head_dim != hidden / heads
    {"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32}},
    {"attn": "eager"},
])
@pytest.mark.parametrize("left", [False, True], ids=["right-padded", "left-padded"])
def test_rewards_and_gradients_match_the_full_layer(overrides, left):
    model = _reward_model(**overrides)
    assert last_token_layer.supported(model.backbone)
    ids, mask = _batch(left)
    ours, ours_grads = _rewards_and_grads(model, ids, mask, lean=True)
    full, full_grads = _rewards_and_grads(model, ids, mask, lean=False)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)
    assert ours_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(ours_grads[name], full_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_the_path_is_taken_and_leaves_the_layer_as_it_was(monkeypatch):
    model = _reward_model()
    layer = model.backbone.layers[-1]
    calls = []
    original = last_token_layer._last_token_forward
    monkeypatch.setattr(last_token_layer, "_last_token_forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    model(*_batch(left=False))
    assert calls == [1]
    assert "forward" not in vars(layer)  # the instance override is gone after the call


def test_lora_layers_take_the_path_with_the_same_result():
    from peft import LoraConfig, get_peft_model

    model = _reward_model()
    model.backbone = get_peft_model(model.backbone, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                                                                init_lora_weights=False)).base_model.model
    assert last_token_layer.supported(model.backbone)
    ids, mask = _batch(left=False)
    ours, ours_grads = _rewards_and_grads(model, ids, mask, lean=True)
    full, full_grads = _rewards_and_grads(model, ids, mask, lean=False)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)
    lora = [n for n in full_grads if "lora_" in n]
    assert lora
    for name in lora:
        torch.testing.assert_close(ours_grads[name], full_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_other_models_and_hooked_layers_run_the_full_layer():
    qwen = _reward_model(Qwen2ForCausalLM, Qwen2Config)
    assert not last_token_layer.supported(qwen.backbone)
    hooked = _reward_model()
    hooked.backbone.layers[-1].register_forward_hook(lambda *a: None)
    assert not last_token_layer.supported(hooked.backbone)
    ids, mask = _batch(left=False)
    plain = _reward_model()
    plain.last_token_only = False
    with torch.no_grad():
        torch.testing.assert_close(hooked(input_ids=ids, attention_mask=mask).rewards,
                                   plain(input_ids=ids, attention_mask=mask).rewards)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = _reward_model()
    ids, mask = _batch(left=False)
    full, full_grads = _rewards_and_grads(model, ids, mask, lean=False)
    model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ours, ours_grads = _rewards_and_grads(model, ids, mask, lean=True)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)
    for name in full_grads:
        torch.testing.assert_close(ours_grads[name], full_grads[name], atol=1e-5, rtol=1e-4, msg=name)
