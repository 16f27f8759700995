"""The reward model's last decoder layer computed at the one token its head reads.

Why by hand: the head reads one hidden state per sequence (the last token's), so in the
last layer only that token's query, attention output and MLP are needed; the keys and
values still come from every token. A full forward computes that layer at every position,
which for the quickstart's 4-layer model is about a fifth of the training step's arithmetic
(for a 32-layer model about 3 %). No library offers a layer that stops at chosen rows.

Same arithmetic as `LlamaDecoderLayer.forward` (the layer's own norms, projections and MLP
modules, its rotary tables, sdpa), so rewards and gradients match the full forward's; a test
checks both. Only exact `LlamaDecoderLayer`s with sdpa or eager attention and no hooks on the
layer, its attention or its norms take this path (the projections and MLP are called as
modules, so LoRA layers work); anything else runs the full layer.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def supported(backbone) -> bool:
    """Whether `backbone` (a base model with `.layers`) has a last layer this path reproduces."""
    from transformers.models.llama.modeling_llama import (
        LlamaAttention,
        LlamaDecoderLayer,
    )

    layers = getattr(backbone, "layers", None)
    if not layers:
        return False
    layer = layers[-1]
    if type(layer) is not LlamaDecoderLayer or type(layer.self_attn) is not LlamaAttention:
        return False
    if getattr(backbone.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    hooked = (layer, layer.self_attn, layer.input_layernorm, layer.post_attention_layernorm)
    return not any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook") for m in hooked)


def _last_token_forward(layer, idx: torch.Tensor, keys: torch.Tensor, hidden_states: torch.Tensor,
                        position_embeddings: tuple[torch.Tensor, torch.Tensor], **_) -> torch.Tensor:
    """hidden_states [B, T, H] -> [B, T, H] where only the rows at `idx` hold the layer's output
    (the other positions pass through unchanged: nothing downstream reads them).

    keys: [B, 1, 1, T] bool, which keys each row's last token may attend to.
    """
    from transformers.models.llama.modeling_llama import rotate_half

    attn = layer.self_attn
    b, t, _ = hidden_states.shape
    rows = torch.arange(b, device=hidden_states.device)
    d = attn.head_dim
    h = layer.input_layernorm(hidden_states)  # [B, T, H]
    q = attn.q_proj(h[rows, idx]).view(b, 1, -1, d).transpose(1, 2)  # [B, nh, 1, d]
    k = attn.k_proj(h).view(b, t, -1, d).transpose(1, 2)  # [B, nkv, T, d]
    v = attn.v_proj(h).view(b, t, -1, d).transpose(1, 2)
    cos, sin = (x.expand(b, -1, -1) for x in position_embeddings)  # [B, T, d]
    k = k * cos.unsqueeze(1) + rotate_half(k) * sin.unsqueeze(1)
    cos_q, sin_q = cos[rows, idx][:, None, None], sin[rows, idx][:, None, None]  # [B, 1, 1, d]
    q = q * cos_q + rotate_half(q) * sin_q
    out = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v, attn_mask=keys,
                                         dropout_p=attn.attention_dropout if attn.training else 0.0,
                                         scale=attn.scaling, enable_gqa=q.shape[1] != k.shape[1])  # [B, nh, 1, d]
    residual = hidden_states[rows, idx] + attn.o_proj(out.transpose(1, 2).reshape(b, -1))  # [B, H]
    final = residual + layer.mlp(layer.post_attention_layernorm(residual))
    return hidden_states.index_put((rows, idx), final)


@contextlib.contextmanager
def last_token_only(backbone, attention_mask: torch.Tensor, idx: torch.Tensor):
    """Within the block, `backbone`'s last layer computes only the tokens at `idx` ([B]).

    attention_mask: the [B, T] padding mask the backbone is called with (left or right padding).
    """
    layer = backbone.layers[-1]
    # idx is each row's last unmasked position, so the causal limit adds nothing to the padding mask.
    keys = attention_mask.bool()[:, None, None]  # [B, 1, 1, T]

    def forward(hidden_states, *args, **kwargs):
        return _last_token_forward(layer, idx, keys, hidden_states, kwargs["position_embeddings"])

    # An instance attribute, which Module.__call__ calls. It also stands in for the class's gradient-
    # checkpointing wrapper, so this one layer is not checkpointed: what it keeps for backward is one
    # token's activations plus the keys and values (tests/test_last_token_layer.py checks the gradients).
    layer.forward = forward
    try:
        yield
    finally:
        del layer.forward
