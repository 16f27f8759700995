"""align.logprobs against the formulas it replaced (full fp32 logits, log_softmax, gather), fp32, to 1e-5:
values and gradients, with temperature, padding, masks, LoRA, tied heads; and that no [B, T, V] tensor is made."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import LlamaConfig, LlamaForCausalLM

from align.chat import IGNORE_INDEX
from align.logprobs import final_hidden, logprobs_from_logits, logprobs_from_model
from align.losses import entropy_from_logits
from align.trainers.dpo import token_logps
from align.trainers.sft import model_token_nll, token_nll

V = 301
ATOL = 1e-5


def tiny(tied: bool = False, seed: int = 0, vocab: int = V) -> LlamaForCausalLM:
    """A tiny Llama built from a config, as align/world/tiny_model.py builds the world's model."""
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=tied, pad_token_id=0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # a non-trivial head: the random init's logits are nearly flat
        model.get_output_embeddings().weight.mul_(8.0)
    return model


def batch(B: int = 3, T: int = 19, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (B, T), generator=g)
    attn = torch.ones(B, T, dtype=torch.long)
    attn[1, T - 6 :] = 0  # right padding
    ids[1, T - 6 :] = 0
    comp = torch.zeros(B, T - 1, dtype=torch.long)
    comp[:, 7:] = 1
    comp[1, T - 7 :] = 0
    return ids, attn, comp


# the formulas align used before (align/trainers/dpo.py, sft.py, losses/ppo.py)
def old_token_logps(logits, input_ids):
    logits = logits[:, :-1].float()
    picked = torch.gather(logits, 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def old_entropy(logits):
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def old_token_nll(logits, labels):
    logits, target = logits[:, :-1].float(), labels[:, 1:]
    mask = target.ne(IGNORE_INDEX)
    return F.cross_entropy(logits.transpose(1, 2), target.clamp_min(0), reduction="none") * mask, mask


def grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a: dict, b: dict, atol: float = ATOL):
    assert a.keys() == b.keys() and a
    for name, value in a.items():
        torch.testing.assert_close(value, b[name], atol=atol, rtol=1e-4, msg=name)


def loss_of(logps, entropy=None):
    """A loss that weighs every position differently (so a wrong gradient row shows)."""
    w = torch.linspace(0.5, 1.5, logps.numel()).view_as(logps)
    out = (w * logps).sum() + 0.1 * (logps**2).sum()
    return out if entropy is None else out + 0.3 * (w * entropy).sum()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [4, None])
def test_values_and_grads_match_full_logits(temperature, chunk):
    model = tiny()
    ids, attn, _ = batch()
    out = model(input_ids=ids, attention_mask=attn)
    logits = out.logits / temperature
    ref, ref_ent = old_token_logps(logits, ids), old_entropy(logits[:, :-1])
    g_ref = grads(model, loss_of(ref, ref_ent))

    new = logprobs_from_model(model, ids, attention_mask=attn, temperature=temperature, with_entropy=True,
                              chunk_size=chunk)
    assert new.lean
    torch.testing.assert_close(new.logps, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(new.entropy, ref_ent, atol=ATOL, rtol=0)
    assert_same_grads(grads(model, loss_of(new.logps, new.entropy)), g_ref)


def test_ppo_slice_positions_and_hidden():
    """PPO's call: left-padded prompts, position ids, start = P - 1, temperature, the shared critic's hidden."""
    from align.rollouts import positions

    model = tiny()
    ids, attn, _ = batch(T=16)
    attn = attn.flip(1)  # left padding
    P = 6
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions(attn), output_hidden_states=True)
    logits = out.logits[:, P - 1 :] / 0.8
    ref, ref_ent = old_token_logps(logits, ids[:, P - 1 :]), old_entropy(logits[:, :-1])
    g_ref = grads(model, loss_of(ref, ref_ent) + out.hidden_states[-1][:, P - 1 : -1].sum())

    new = logprobs_from_model(model, ids, attention_mask=attn, position_ids=positions(attn), use_cache=False,
                              start=P - 1, temperature=0.8, with_entropy=True, return_hidden=True, chunk_size=5)
    assert new.logps.shape == (3, 16 - P)
    torch.testing.assert_close(new.logps, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(new.entropy, ref_ent, atol=ATOL, rtol=0)
    torch.testing.assert_close(new.hidden, out.hidden_states[-1], atol=ATOL, rtol=0)
    g_new = grads(model, loss_of(new.logps, new.entropy) + new.hidden[:, P - 1 : -1].sum())
    assert_same_grads(g_new, g_ref)
    with torch.no_grad():
        h = final_hidden(model, ids, attention_mask=attn, position_ids=positions(attn), use_cache=False)
    torch.testing.assert_close(h, out.hidden_states[-1].detach(), atol=ATOL, rtol=0)


def test_masked_rows_dpo_sum():
    """DPO scores the completion tokens only: the masked sums and their gradients are unchanged."""
    model = tiny()
    ids, attn, comp = batch()
    ref = (old_token_logps(model(input_ids=ids, attention_mask=attn).logits, ids) * comp).sum(-1)
    g_ref = grads(model, (ref * torch.tensor([1.0, -2.0, 0.5])).sum())
    new = logprobs_from_model(model, ids, attention_mask=attn, mask=comp, chunk_size=3).logps
    assert (new[comp == 0] == 0).all()
    new = (new * comp).sum(-1)
    torch.testing.assert_close(new, ref, atol=ATOL, rtol=0)
    assert_same_grads(grads(model, (new * torch.tensor([1.0, -2.0, 0.5])).sum()), g_ref)


def test_sft_nll_and_logits_compat():
    model = tiny()
    ids, attn, _ = batch()
    labels = ids.clone()
    labels[:, :8] = IGNORE_INDEX
    labels[attn == 0] = IGNORE_INDEX
    logits = model(input_ids=ids, attention_mask=attn).logits
    ref, ref_mask = old_token_nll(logits, labels)
    g_ref = grads(model, loss_of(ref))

    nll, mask = model_token_nll(model, {"input_ids": ids, "attention_mask": attn, "labels": labels})
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(nll, ref, atol=ATOL, rtol=0)
    assert_same_grads(grads(model, loss_of(nll)), g_ref)

    # the compat entry points that take logits (evaluation, user code): chunked, same values and grads
    logits = model(input_ids=ids, attention_mask=attn).logits
    nll2, _ = token_nll(logits, labels)
    lp = token_logps(logits, ids)
    torch.testing.assert_close(nll2, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(lp, old_token_logps(logits, ids), atol=ATOL, rtol=0)
    g_new = grads(model, loss_of(nll2) + loss_of(lp))
    logits = model(input_ids=ids, attention_mask=attn).logits
    assert_same_grads(g_new, grads(model, loss_of(old_token_nll(logits, labels)[0]) + loss_of(old_token_logps(logits, ids))))


def test_logits_path_entropy_and_temperature():
    logits = torch.randn(2, 9, V, requires_grad=True)
    ids = torch.randint(0, V, (2, 9))
    ref, ref_ent = old_token_logps(logits / 1.3, ids), old_entropy((logits / 1.3)[:, :-1])
    (g_ref,) = torch.autograd.grad(loss_of(ref, ref_ent), logits)
    lp, ent = logprobs_from_logits(logits, ids, temperature=1.3, with_entropy=True, chunk_size=4)
    torch.testing.assert_close(lp, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(ent, ref_ent, atol=ATOL, rtol=0)
    (g_new,) = torch.autograd.grad(loss_of(lp, ent), logits)
    torch.testing.assert_close(g_new, g_ref, atol=ATOL, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(entropy_from_logits(logits, chunk=3), old_entropy(logits), atol=ATOL, rtol=0)


def test_tied_head():
    model = tiny(tied=True)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    ids, attn, _ = batch()
    ref = old_token_logps(model(input_ids=ids, attention_mask=attn).logits, ids)
    g_ref = grads(model, loss_of(ref))
    new = logprobs_from_model(model, ids, attention_mask=attn, chunk_size=7)
    assert new.lean
    torch.testing.assert_close(new.logps, ref, atol=ATOL, rtol=0)
    assert_same_grads(grads(model, loss_of(new.logps)), g_ref)


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["q_proj", "v_proj", "lm_head"]])
def test_lora(targets):
    """peft-wrapped: the head is found on the base model; a LoRA lm_head goes through the module, checkpointed."""
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                        lora_dropout=0.0, init_lora_weights=False))
    ids, attn, _ = batch()
    ref = (old_token_logps(model(input_ids=ids, attention_mask=attn).logits / 0.9, ids))
    g_ref = grads(model, loss_of(ref))
    new = logprobs_from_model(model, ids, attention_mask=attn, temperature=0.9, chunk_size=5)
    assert new.lean
    torch.testing.assert_close(new.logps, ref, atol=ATOL, rtol=0)
    g_new = grads(model, loss_of(new.logps))
    assert any("lora" in n for n in g_new) and all("lora" in n for n in g_new)
    assert_same_grads(g_new, g_ref)
    with torch.no_grad(), model.disable_adapter():  # the reference of DPO / PPO with LoRA
        base = old_token_logps(model(input_ids=ids, attention_mask=attn).logits, ids)
        torch.testing.assert_close(logprobs_from_model(model, ids, attention_mask=attn).logps, base,
                                   atol=ATOL, rtol=0)


class SoftcappedLlama(LlamaForCausalLM):
    """Logits that are not a plain projection of the last hidden state (as Gemma 2's softcapping)."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = 3.0 * torch.tanh(out.logits / 3.0)
        return out


def test_transformed_logits_fall_back_to_the_models_logits():
    torch.manual_seed(0)
    model = SoftcappedLlama(tiny().config)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    ids, attn, _ = batch()
    ref = old_token_logps(model(input_ids=ids, attention_mask=attn).logits, ids)
    g_ref = grads(model, loss_of(ref))
    new = logprobs_from_model(model, ids, attention_mask=attn, chunk_size=5)
    assert not new.lean
    torch.testing.assert_close(new.logps, ref, atol=ATOL, rtol=0)
    assert_same_grads(grads(model, loss_of(new.logps)), g_ref)


def test_bf16_close_to_full_logits():
    model = tiny().to(torch.bfloat16)
    ids, attn, _ = batch()
    with torch.no_grad():
        ref = old_token_logps(model(input_ids=ids, attention_mask=attn).logits, ids)
        new = logprobs_from_model(model, ids, attention_mask=attn, chunk_size=5)
    assert new.lean and new.logps.dtype == torch.float32
    torch.testing.assert_close(new.logps, ref, atol=0.05, rtol=0.02)


class LargestTensor(TorchDispatchMode):
    """The largest tensor any op returns while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_tensor_of_all_positions_times_vocab():
    """Forward and backward never make a tensor with B*T*V elements (the largest is chunk x V)."""
    vocab = 4096
    model = tiny(vocab=vocab)
    ids = torch.randint(1, vocab, (4, 64))
    chunk = 16
    with LargestTensor() as seen:
        out = logprobs_from_model(model, ids, with_entropy=True, chunk_size=chunk)
        loss_of(out.logps, out.entropy).backward()
    assert out.lean
    assert seen.largest <= max(chunk * vocab, vocab * 32), seen.largest  # chunk x V, or the head's V x H
    with LargestTensor() as old:
        old_token_logps(model(input_ids=ids).logits, ids).sum().backward()
    assert old.largest >= 4 * 63 * vocab
