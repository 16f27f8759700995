"""One decode step of a Llama model as plain tensor ops, for `align.decode.decode_compacting`.

Why by hand: for the small models of the world and of rollouts on a CPU a decode step is
bound by per-op overhead, not arithmetic. Through `LlamaForCausalLM.forward` one step of
the quickstart model (4 layers) costs about 12 ms of module calls, kwargs handling, mask
and cache dispatch for well under 1 ms of matrix products. Here the same step is the same
products in a flat loop: q/k/v and gate/up fused into one product each, the rotary
embedding from the model's own module (every RoPE type it knows), the KV cache written in
place (`_AppendingLayer`), and the 4D boolean mask the loop already holds. Same arithmetic
as the model's forward (RMSNorm in fp32, sdpa), so greedy tokens match; a test checks the
logits against the model's forward.

Only exact `LlamaForCausalLM`s of plain `nn.Linear` / `LlamaRMSNorm` modules with SiLU, no
hooks (no accelerate offload, no LoRA layers, no quantised weights) and sdpa attention take
this path; anything else runs the model's forward as before. Prefill stays on the model's
forward (one call per length group, already arithmetic-bound).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Fuse q/k/v and gate/up (one product each instead of five) only for models of at most this many
# parameter bytes: fusing copies those weights once per decode call, which small models never notice.
_FUSE_MAX_BYTES = 1 << 30


def _rms(h: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm: in fp32, back to h's dtype, then scaled."""
    x = h.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(h.dtype)


def _plain(module) -> bool:
    return not (module._forward_hooks or module._forward_pre_hooks or hasattr(module, "_hf_hook"))


def supported(model) -> bool:
    """Whether `model` is a plain Llama this step reproduces exactly."""
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    if type(model) is not LlamaForCausalLM:
        return False
    cfg = model.config
    if getattr(cfg, "_attn_implementation", None) != "sdpa" or cfg.hidden_act != "silu":
        return False
    if getattr(cfg, "pretraining_tp", 1) != 1:
        return False
    modules = list(model.modules())
    if not all(_plain(m) for m in modules):
        return False
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        linears = [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]
        if not all(type(m) is torch.nn.Linear for m in linears):
            return False
        if not all(type(m) is LlamaRMSNorm for m in (layer.input_layernorm, layer.post_attention_layernorm)):
            return False
    if type(model.lm_head) is not torch.nn.Linear or type(model.model.norm) is not LlamaRMSNorm:
        return False
    return all(p.is_floating_point() and type(p.data) is torch.Tensor for p in model.parameters())


def _cat(tensors):
    return None if tensors[0] is None else torch.cat(tensors)


class LeanLlamaStep:
    """`step(tokens [k], positions [k, 1], mask [k, 1, 1, L + 1], cache) -> logits [k, V]`.

    `cache` holds one `_AppendingLayer` per layer with L positions filled; the step appends one.
    Build it once per decode call (`LeanLlamaStep(model)`): it reads the weights as they are then.
    """

    def __init__(self, model):
        inner, cfg = model.model, model.config
        fuse = sum(p.numel() * p.element_size() for p in model.parameters()) <= _FUSE_MAX_BYTES
        self.embed, self.rotary = inner.embed_tokens.weight, inner.rotary_emb
        self.norm, self.norm_eps = inner.norm.weight, inner.norm.variance_epsilon
        self.lm_head, self.lm_bias = model.lm_head.weight, model.lm_head.bias
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            heads = cfg.num_attention_heads
            qkv = [a.q_proj, a.k_proj, a.v_proj]
            gate_up = [m.gate_proj, m.up_proj]
            self.layers.append({
                "in_norm": layer.input_layernorm.weight, "in_eps": layer.input_layernorm.variance_epsilon,
                "post_norm": layer.post_attention_layernorm.weight,
                "post_eps": layer.post_attention_layernorm.variance_epsilon,
                "qkv": ([_cat([p.weight for p in qkv])], [_cat([p.bias for p in qkv])]) if fuse
                       else ([p.weight for p in qkv], [p.bias for p in qkv]),
                "split": [p.out_features for p in qkv],
                "o": (a.o_proj.weight, a.o_proj.bias),
                "gate_up": ([_cat([p.weight for p in gate_up])], [_cat([p.bias for p in gate_up])]) if fuse
                           else ([p.weight for p in gate_up], [p.bias for p in gate_up]),
                "inter": m.gate_proj.out_features,
                "down": (m.down_proj.weight, m.down_proj.bias),
                "heads": heads, "kv_heads": a.k_proj.out_features // a.head_dim, "head_dim": a.head_dim,
                "scaling": a.scaling,
            })

    @staticmethod
    def _project(x, weights, biases, sizes):
        """The products of x with each weight (one fused product, split by sizes, or one each)."""
        if len(weights) == 1:
            return F.linear(x, weights[0], biases[0]).split(sizes, dim=-1)
        return [F.linear(x, w, b) for w, b in zip(weights, biases)]

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache) -> torch.Tensor:
        k = tokens.shape[0]
        h = F.embedding(tokens[:, None], self.embed)  # [k, 1, E]
        cos, sin = self.rotary(h, positions)  # [k, 1, D]
        cos, sin = cos[:, None], sin[:, None]  # [k, 1, 1, D]: broadcast over heads
        half = cos.shape[-1] // 2
        # rotate_half(x) * sin == roll(x, half) * (sin with its first half negated): no cat per call
        sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        for spec, layer_cache in zip(self.layers, cache.layers):
            H, Hkv, D = spec["heads"], spec["kv_heads"], spec["head_dim"]
            x = _rms(h, spec["in_norm"], spec["in_eps"])
            q, key, value = self._project(x, *spec["qkv"], spec["split"])
            q = q.view(k, 1, H, D).transpose(1, 2)  # [k, H, 1, D]
            key = key.view(k, 1, Hkv, D).transpose(1, 2)
            value = value.view(k, 1, Hkv, D).transpose(1, 2)
            q = q * cos + q.roll(half, -1) * sin
            key = key * cos + key.roll(half, -1) * sin
            keys, values = layer_cache.update(key, value)
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=spec["scaling"],
                                                  enable_gqa=H != Hkv)
            h = h + F.linear(attn.transpose(1, 2).reshape(k, 1, H * D), *spec["o"])
            x = _rms(h, spec["post_norm"], spec["post_eps"])
            gate, up = self._project(x, *spec["gate_up"], [spec["inter"], spec["inter"]])
            h = h + F.linear(F.silu(gate) * up, *spec["down"])
        h = _rms(h, self.norm, self.norm_eps)
        return F.linear(h[:, 0], self.lm_head, self.lm_bias)
