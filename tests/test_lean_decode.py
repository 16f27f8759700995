"""The flat Llama decode step (align/lean_decode.py): the model forward's logits and tokens, or the forward itself."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from align.decode import _cache_kwarg, _out_cache, _prefill, decode_compacting
from align.lean_decode import LeanLlamaStep, supported


def _llama(**overrides) -> LlamaForCausalLM:
    config = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=128, pad_token_id=0, tie_word_embeddings=False)
    config.update(overrides)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config)).eval()
    with torch.no_grad():  # random biases, so a bias left out of the step would show
        for p in model.parameters():
            if p.dim() == 1 and not torch.all(p == 1):
                p.normal_(0, 0.1)
    return model


def _batch():
    """Four left-padded prompts of different lengths, rows in ascending length (as decode passes them)."""
    lengths = [3, 5, 5, 9]
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    g = torch.Generator().manual_seed(1)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(1, 97, (n,), generator=g)
        mask[row, -n:] = 1
    return ids, mask, lengths


@pytest.mark.parametrize("overrides", [
    {},
    {"num_key_value_heads": 2},                                  # grouped-query attention
    {"attention_bias": True, "mlp_bias": True},                  # biases in every projection
    {"tie_word_embeddings": True, "head_dim": 8},                # tied LM head; head_dim != hidden / heads
    {"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32}},
])
@torch.inference_mode()
def test_step_logits_match_the_model_forward(overrides):
    model = _llama(**overrides)
    assert supported(model)
    ids, mask, lengths = _batch()
    steps = 5
    logits, cache = _prefill(model, ids, mask, lengths, steps)
    ref_cache = copy.deepcopy(cache)
    full = torch.cat([mask, mask.new_ones(len(lengths), steps)], dim=-1).bool()[:, None, None, :]
    pos = mask.sum(-1, keepdim=True)
    lean = LeanLlamaStep(model)
    tokens = ref_tokens = logits.argmax(-1)
    for s in range(steps):
        ours = lean(tokens, pos + s, full[..., : ids.shape[1] + s + 1], cache)
        out = model(input_ids=ref_tokens[:, None], attention_mask=full[..., : ids.shape[1] + s + 1],
                    position_ids=pos + s, **{_cache_kwarg(model): ref_cache}, use_cache=True, logits_to_keep=1)
        ref_cache, ref = _out_cache(out), out.logits[:, -1]
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        tokens = ref_tokens = ref.argmax(-1)


def test_greedy_and_sampled_tokens_match_the_forward_path_with_rows_finishing():
    model = _llama(num_key_value_heads=2)
    ids, mask, _ = _batch()
    ids, mask = ids.repeat(3, 1), mask.repeat(3, 1)
    forward = decode_compacting(model, ids, mask, max_new_tokens=20, eos_ids=[], lean=False)
    eos = torch.bincount(torch.tensor([t for r in forward for t in r])).argmax().item()  # a token rows do emit
    for temperature in (0.0, 1.0):
        runs = [decode_compacting(model, ids, mask, max_new_tokens=20, eos_ids=[eos], temperature=temperature,
                                  top_p=0.9, generator=torch.Generator().manual_seed(0), lean=lean)
                for lean in (True, False)]
        assert runs[0] == runs[1]
        assert len({len(r) for r in runs[0]}) > 1  # rows did leave the batch at different steps


def test_models_it_cannot_reproduce_take_the_forward():
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert not supported(lora) and not supported(lora.get_base_model())  # LoRA layers replace nn.Linear
    eager = _llama()
    eager.config._attn_implementation = "eager"
    assert not supported(eager)
    hooked = _llama()
    hooked.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    assert not supported(hooked)
    ids, mask, _ = _batch()
    # decode still runs through the forward, with the LoRA adapter applied
    assert len(decode_compacting(lora, ids, mask, max_new_tokens=4, eos_ids=[])[0]) == 4
