"""Per-token log-probabilities (and entropies) without the full [B, T, V] logits in fp32.

Every trainer that needs log p(x_t | x_<t) (DPO, PPO and the other policy-gradient trainers,
SteerLM 2.0, SFT) calls `logprobs_from_model`. It runs the model (through whatever wraps it:
DDP, accelerate, peft) with `logits_to_keep=1`, so the model's own LM head projects one position
only, takes the final hidden states from a forward hook on the backbone, and projects them
through the LM head `chunk_size` rows of [B*T] at a time: only one chunk's logits exist at a
time, in fp32 (chunk x V), and the backward recomputes each chunk's logits instead of keeping
them, so it holds O(chunk x V) too (`_HeadLogProbs`). The values are those of the full-logits
formula (log_softmax in fp32, then gather); the gradients are exact.

Where the hidden-state path cannot be used it falls back to the model's logits, and still
computes chunk-wise in fp32 (`logprobs_from_own_logits`: no fp32 copy; the model's logits, in
their own dtype, are held, and their gradient; only from position `start` on, through the model's
`logits_to_keep`, so PPO's prompts get none): under DeepSpeed ZeRO-3 and FSDP (the LM head's
weight is sharded outside its module's forward; untested here, so not attempted), for a model
whose forward takes no `logits_to_keep`, or whose logits are not a plain projection of the
final hidden state (softcapping, logit scaling: checked once per model against the logits the
model returns for its last position).

Why hand-written: TRL 1.16 (installed) ships the same kernel, `trl.kernels.ChunkedLogProbFunction`
(it also tiles the vocabulary, and uses Triton on CUDA), and `trl.trainer.utils.selective_log_softmax`
for logits one already has. Not used: the kernel is new public API (TRL 1.14's release notes
still call it the private `_ChunkedLogProbFunction`) while this project supports `trl>=1.0`, the
GPU image has no TRL, and TRL's model side (`add_fused_lm_head`) monkey-patches `model.forward`,
must run before PEFT wraps the model and refuses LoRA on `lm_head`. Liger-Kernel (not
installed) fuses the head into whole losses (cross-entropy, DPO, GRPO, ...), not per-token
log-probs for a trainer's own loss. transformers 5 has `logits_to_keep` (slice the positions
before the head; used here so the model's own head projects one position) and nothing chunked
with a backward. What none of them offers is the model side this needs: the wrapped model's own
forward, so DDP's reducer is armed (TRL 1.14's notes describe a fused path that lost the
all-reduce by calling the unwrapped model); the final hidden state through any wrapper without
the logits; a check that the logits are a plain projection of it; and the fallback to the
model's logits under ZeRO-3 / FSDP.
"""
from __future__ import annotations

import inspect
import logging
import os
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("align")

DEFAULT_CHUNK = 1024  # rows of [B*T] per chunk; ALIGN_LOGPROB_CHUNK overrides


def chunk_rows(chunk_size: int | None = None) -> int:
    """The chunk size in use: the argument, else $ALIGN_LOGPROB_CHUNK, else DEFAULT_CHUNK."""
    if chunk_size is None:
        chunk_size = int(os.environ.get("ALIGN_LOGPROB_CHUNK", DEFAULT_CHUNK))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


@dataclass
class TokenLogProbs:
    """logps / entropy: [B, T-1-start] fp32 (0 where `mask` is 0); hidden: the final hidden states
    [B, T, H] (always with the hidden-state path, else only with return_hidden); lean: which path ran."""

    logps: torch.Tensor
    entropy: torch.Tensor | None
    hidden: torch.Tensor | None
    lean: bool


# ---- the math of one chunk -------------------------------------------------------------------
def _fold(z: torch.Tensor, targets: torch.Tensor, with_entropy: bool):
    """z: fp32 logits [c, V] (already divided by the temperature) -> (logp [c], lse [c], entropy [c] | None).

    torch.logsumexp's algorithm (max, exp of the difference, sum, log), written out so that one
    [c, V] buffer besides z is made, and reused as the softmax for the entropy.
    """
    m = z.amax(dim=-1, keepdim=True)
    e = (z - m).exp_()
    total = e.sum(dim=-1)
    lse = m.squeeze(1) + total.log()
    logp = z.gather(1, targets.unsqueeze(1)).squeeze(1) - lse
    ent = None
    if with_entropy:  # H = lse - sum_v p_v z_v
        p = e.div_(total.unsqueeze(1))
        ent = lse - torch.bmm(p.unsqueeze(1), z.unsqueeze(2)).view(-1)
    return logp, lse, ent


def _fold_chunks(n: int, chunk: int, logits_of, targets: torch.Tensor, with_entropy: bool, device):
    """`_fold` over rows [s, e) of n, `chunk` at a time: logits_of(s, e) gives that chunk's fp32 logits.
    Returns (logp [n], lse [n], entropy [n] | None); only one chunk's logits exist at a time."""
    logp = torch.empty(n, dtype=torch.float32, device=device)
    lse = torch.empty_like(logp)
    ent = torch.empty_like(logp) if with_entropy else None
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        logp[s:e], lse[s:e], en = _fold(logits_of(s, e), targets[s:e], with_entropy)
        if with_entropy:
            ent[s:e] = en
    return logp, lse, ent


def _grad_logits(z: torch.Tensor, targets, lse, g_logp, ent, g_ent, temperature: float) -> torch.Tensor:
    """d loss / d (pre-temperature logits) of one chunk, fp32 [c, V]; overwrites z (fp32 logits / T)."""
    z.sub_(lse.unsqueeze(1))  # log p
    if g_ent is not None:  # dH/dz_v = -p_v (log p_v + H)
        p = z.exp()
        grad = z.add_(ent.unsqueeze(1)).mul_(p).mul_(-g_ent.unsqueeze(1))
        if g_logp is not None:
            grad.addcmul_(p, g_logp.unsqueeze(1), value=-1.0)
        del p
    else:
        grad = z.exp_().mul_(-g_logp.unsqueeze(1))  # d log p_t / dz_v = 1[v = t] - p_v
    if g_logp is not None:
        grad.scatter_add_(1, targets.unsqueeze(1), g_logp.unsqueeze(1))
    if temperature != 1.0:
        grad.div_(temperature)
    return grad


def _project(h: torch.Tensor, weight: torch.Tensor, bias, compute_dtype, temperature: float) -> torch.Tensor:
    z = F.linear(h.to(compute_dtype), weight, bias).float()  # a fresh tensor either way: ours to modify
    return z.div_(temperature) if temperature != 1.0 else z


def _addmm_fp32(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """acc (fp32) += a @ b without rounding the product to a 16-bit dtype first."""
    if a.dtype == torch.float32 and b.dtype == torch.float32:
        acc.addmm_(a, b)
    elif acc.device.type == "cuda":
        try:
            torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
            return
        except (TypeError, RuntimeError):
            acc.addmm_(a.float(), b.float())
    else:
        acc.addmm_(a.float(), b.float())


class _HeadLogProbs(torch.autograd.Function):
    """log p(targets) (and entropy) of `hidden @ weight.T + bias`, `chunk` rows at a time, recomputed in backward.

    hidden [N, H], weight [V, H], bias [V] | None, targets [N]. The weight gradient is accumulated
    in fp32 over the chunks (rounding each chunk's product to bf16 before the sum biases training).
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk, with_entropy, compute_dtype):
        ctx.set_materialize_grads(False)
        n = hidden.shape[0]
        w = weight.to(compute_dtype)
        b = bias.to(compute_dtype) if bias is not None else None
        with torch.autocast(hidden.device.type, enabled=False):
            logp, lse, ent = _fold_chunks(n, chunk, lambda s, e: _project(hidden[s:e], w, b, compute_dtype, temperature),
                                          targets, with_entropy, hidden.device)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, ent)
        ctx.temperature, ctx.chunk, ctx.compute_dtype = temperature, chunk, compute_dtype
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, bias, targets, lse, ent = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if (g_logp is None and g_ent is None) or not (need_h or need_w or need_b):
            return (None,) * 8
        if ent is None:
            g_ent = None
        cd, temperature, chunk = ctx.compute_dtype, ctx.temperature, ctx.chunk
        w = weight.to(cd)
        b = bias.to(cd) if bias is not None else None
        n = hidden.shape[0]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        g_logp = g_logp.float() if g_logp is not None else None
        g_ent = g_ent.float() if g_ent is not None else None
        with torch.autocast(hidden.device.type, enabled=False):
            for s in range(0, n, chunk):
                e = min(n, s + chunk)
                h = hidden[s:e].to(cd)
                gz = _grad_logits(_project(h, w, b, cd, temperature), targets[s:e], lse[s:e],
                                  None if g_logp is None else g_logp[s:e], None if ent is None else ent[s:e],
                                  None if g_ent is None else g_ent[s:e], temperature)
                if need_b:
                    grad_b += gz.sum(0)
                gz = gz.to(cd)  # the logits' gradient in the dtype the head computes in (a no-op in fp32)
                if need_w:
                    _addmm_fp32(grad_w, gz.t(), h)
                if need_h:
                    grad_h[s:e] = (gz @ w).to(hidden.dtype)
                del gz
        return (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                None if grad_b is None else grad_b.to(bias.dtype), None, None, None, None, None)


class _LogitsLogProbs(torch.autograd.Function):
    """log p(targets) (and entropy) at rows (bi, ti) of logits [B, T, V], chunk-wise in fp32.

    Saves only the logits themselves (the model's output, in its own dtype); backward writes their
    gradient chunk by chunk, so no [B, T, V] fp32 tensor is ever made.
    """

    @staticmethod
    def forward(ctx, logits, bi, ti, targets, temperature, chunk, with_entropy):
        ctx.set_materialize_grads(False)
        n = bi.shape[0]
        logp, lse, ent = _fold_chunks(n, chunk, lambda s, e: _rows(logits, bi[s:e], ti[s:e], temperature), targets,
                                      with_entropy, logits.device)
        ctx.save_for_backward(logits, bi, ti, targets, lse, ent)
        ctx.temperature, ctx.chunk = temperature, chunk
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        logits, bi, ti, targets, lse, ent = ctx.saved_tensors
        if (g_logp is None and g_ent is None) or not ctx.needs_input_grad[0]:
            return (None,) * 7
        if ent is None:
            g_ent = None
        grad = torch.zeros_like(logits)
        n = bi.shape[0]
        g_logp = g_logp.float() if g_logp is not None else None
        g_ent = g_ent.float() if g_ent is not None else None
        for s in range(0, n, ctx.chunk):
            e = min(n, s + ctx.chunk)
            gz = _grad_logits(_rows(logits, bi[s:e], ti[s:e], ctx.temperature), targets[s:e], lse[s:e],
                              None if g_logp is None else g_logp[s:e], None if ent is None else ent[s:e],
                              None if g_ent is None else g_ent[s:e], ctx.temperature)
            grad[bi[s:e], ti[s:e]] = gz.to(grad.dtype)
            del gz
        return grad, None, None, None, None, None, None


def _rows(logits, bi, ti, temperature):
    z = logits[bi, ti].float()  # advanced indexing copies: z is ours to modify
    return z.div_(temperature) if temperature != 1.0 else z


def _chunk_with_module(head: nn.Module, temperature: float, with_entropy: bool):
    def fn(h, t):
        z = head(h).float()
        if temperature != 1.0:
            z = z / temperature
        lp, _, en = _fold(z, t, with_entropy)
        return (lp, en) if with_entropy else (lp,)
    return fn


# ---- row selection ---------------------------------------------------------------------------
def _positions(shape, start: int, mask, device):
    """(bi, ti, out_shape): rows b, source positions t (start <= t < T-1) to score; mask [B, T-1-start]."""
    B, T = shape
    L = T - 1 - start
    if L < 0:
        raise ValueError(f"start={start} leaves no positions in a sequence of {T}")
    if mask is None:
        bi = torch.arange(B, device=device).repeat_interleave(L)
        ti = torch.arange(start, T - 1, device=device).repeat(B)
    else:
        if tuple(mask.shape) != (B, L):
            raise ValueError(f"mask must be [B, T-1-start] = {(B, L)}, got {tuple(mask.shape)}")
        bi, ti = mask.bool().nonzero(as_tuple=True)
        ti = ti + start
    return bi, ti, (B, L)


def _scatter(values, bi, ti, start, out_shape):
    if values is None:
        return None
    if values.shape[0] == out_shape[0] * out_shape[1]:  # every row: a view, no scatter
        return values.view(out_shape)
    out = values.new_zeros(out_shape)
    return out.index_put((bi, ti - start), values)


def logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor, *, start: int = 0, mask=None,
                         temperature: float = 1.0, with_entropy: bool = False, chunk_size: int | None = None):
    """From logits a caller already has: logits [B, T, V], targets [B, T] (the token at t+1 is scored
    with the logits at t) -> (logps, entropy | None), each [B, T-1-start] fp32, 0 where mask is 0."""
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in [B, T]")
    bi, ti, shape = _positions(targets.shape, start, mask, logits.device)
    tg = targets[bi, ti + 1]
    logp, ent = _LogitsLogProbs.apply(logits, bi, ti, tg, float(temperature), chunk_rows(chunk_size), with_entropy)
    return _scatter(logp, bi, ti, start, shape), _scatter(ent, bi, ti, start, shape)


def logprobs_from_hidden(hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, *, start: int = 0, mask=None,
                         temperature: float = 1.0, with_entropy: bool = False, chunk_size: int | None = None,
                         compute_dtype: torch.dtype | None = None):
    """From final hidden states [B, T, H] through the LM head module `head`, in chunks (see module doc)."""
    bi, ti, shape = _positions(targets.shape, start, mask, hidden.device)
    rows, tg = hidden[bi, ti], targets[bi, ti + 1]
    chunk = chunk_rows(chunk_size)
    weight, bias = getattr(head, "weight", None), getattr(head, "bias", None)
    if type(head) is nn.Linear:
        cd = compute_dtype or weight.dtype
        logp, ent = _HeadLogProbs.apply(rows, weight, bias, tg, float(temperature), chunk, with_entropy, cd)
    else:  # any other head (a LoRA-wrapped lm_head, ...): the module itself, checkpointed per chunk
        fn = _chunk_with_module(head, float(temperature), with_entropy)
        grad = torch.is_grad_enabled() and (rows.requires_grad or any(p.requires_grad for p in head.parameters()))
        parts = []
        ac = torch.autocast(rows.device.type, dtype=compute_dtype) if (
            compute_dtype is not None and weight is not None and compute_dtype != weight.dtype) else _null()
        with ac:
            for s in range(0, rows.shape[0], chunk):
                args = (rows[s : s + chunk], tg[s : s + chunk])
                parts.append(torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False) if grad else fn(*args))
        if not parts:  # nothing to score: an empty result, still connected to the graph
            empty = rows.new_zeros(0, dtype=torch.float32) + (rows.sum() * 0 if grad else 0)
            parts = [(empty, empty) if with_entropy else (empty,)]
        logp = torch.cat([p[0] for p in parts])
        ent = torch.cat([p[1] for p in parts]) if with_entropy else None
    return _scatter(logp, bi, ti, start, shape), _scatter(ent, bi, ti, start, shape)


@contextmanager
def _null():
    yield


# ---- the model side --------------------------------------------------------------------------
def _unwrap(model):
    """(the transformers model inside DDP / DeepSpeed / FSDP / peft wrappers, whether a sharding wrapper was met)."""
    m, sharded = model, False
    for _ in range(16):
        name = type(m).__name__
        if name in ("FullyShardedDataParallel",) or name.startswith("FSDP"):
            sharded = True
        inner = getattr(m, "module", None)  # DDP, DeepSpeedEngine, FSDP1
        if not isinstance(inner, nn.Module):
            inner = getattr(m, "_orig_mod", None)  # torch.compile
        if isinstance(inner, nn.Module):
            m = inner
            continue
        if hasattr(m, "get_base_model") and hasattr(m, "peft_config"):
            base = m.get_base_model()
            if base is not m:
                m = base
                continue
        break
    return m, sharded


def _param_sharded(p) -> bool:
    if p is None:
        return False
    if hasattr(p, "ds_id") or hasattr(p, "ds_status"):  # DeepSpeed ZeRO-3
        return True
    return type(p).__name__ == "DTensor"  # FSDP2 / tensor parallel


_KEEP_KW: dict[type, str | None] = {}
_CHECKED: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _keep_kw(hf) -> str | None:
    cls = type(hf)
    if cls not in _KEEP_KW:
        try:
            params = inspect.signature(cls.forward).parameters
        except (TypeError, ValueError):
            params = {}
        _KEEP_KW[cls] = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    return _KEEP_KW[cls]


def _lean_parts(model):
    """(hf model, head, backbone, keep kwarg) when the hidden-state path applies, else None."""
    hf, sharded = _unwrap(model)
    if sharded or _CHECKED.get(hf) is False:
        return None
    get_head = getattr(hf, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if head is None or getattr(head, "weight", None) is None or head.weight.dim() != 2:
        return None
    if any(_param_sharded(p) for p in head.parameters()):
        return None
    backbone = None
    if callable(getattr(hf, "get_decoder", None)):
        try:
            backbone = hf.get_decoder()
        except (AttributeError, NotImplementedError, ValueError):  # "a bespoke rule" models raise
            backbone = None
    if backbone is None or backbone is hf:
        backbone = getattr(hf, "base_model", None)
    if not isinstance(backbone, nn.Module) or backbone is hf:
        return None
    keep = _keep_kw(hf)
    if keep is None:
        return None
    return hf, head, backbone, keep


@contextmanager
def _capture(backbone: nn.Module, head: nn.Module):
    """Record the backbone's last hidden state and the dtype the model's LM head computes in."""
    seen: dict = {}

    def grab_hidden(_m, _args, out):
        h = getattr(out, "last_hidden_state", None)
        seen["hidden"] = h if h is not None else (out[0] if isinstance(out, (tuple, list)) else out)

    def grab_dtype(_m, _args, out):
        if isinstance(out, torch.Tensor):
            seen["dtype"] = out.dtype

    handles = [backbone.register_forward_hook(grab_hidden), head.register_forward_hook(grab_dtype)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def _head_matches(head, hidden_last, logits_last, compute_dtype) -> bool:
    """Is the model's last-position logit row the plain projection of its last hidden state?"""
    with torch.autocast(hidden_last.device.type, enabled=False):
        if type(head) is nn.Linear:
            w = head.weight.to(compute_dtype)
            b = head.bias.to(compute_dtype) if head.bias is not None else None
            z = F.linear(hidden_last.to(compute_dtype), w, b).float()
        else:
            z = head(hidden_last).float()
    ref = logits_last.float()
    if z.shape != ref.shape:
        return False
    tol = 1e-4 + (2e-2 if compute_dtype in (torch.bfloat16, torch.float16) else 1e-4) * ref.abs().max().item()
    return bool((z - ref).abs().max().item() <= tol)


def logprobs_from_model(model, input_ids: torch.Tensor, *, targets: torch.Tensor | None = None, start: int = 0,
                        mask: torch.Tensor | None = None, temperature: float = 1.0, with_entropy: bool = False,
                        return_hidden: bool = False, chunk_size: int | None = None, **model_kwargs) -> TokenLogProbs:
    """Per-token log p(targets[:, t+1] | x_<=t) for start <= t < T-1, from one forward of `model`.

    input_ids [B, T]; targets [B, T] (default input_ids; positions not scored may hold any id >= 0);
    mask [B, T-1-start]: score only where it is nonzero (the rest are 0 and cost nothing);
    temperature: the logits are divided by it (PPO's sampling distribution); with_entropy: also the
    entropy of that distribution per position (differentiable); model_kwargs go to the model
    (attention_mask, position_ids, use_cache, ...). `model` may be wrapped (DDP, accelerate, peft).
    """
    targets = input_ids if targets is None else targets
    parts = _lean_parts(model)
    if parts is not None:
        hf, head, backbone, keep = parts
        with _capture(backbone, head) as seen:
            out = model(input_ids=input_ids, **{keep: 1}, **model_kwargs)
        hidden = seen.get("hidden")
        ok = isinstance(hidden, torch.Tensor) and hidden.dim() == 3 and hidden.shape[:2] == input_ids.shape
        cd = seen.get("dtype") or head.weight.dtype
        if ok and hf not in _CHECKED:
            logits = getattr(out, "logits", None)
            ok = logits is not None and _head_matches(head, hidden[:, -1], logits[:, -1], cd)
            _CHECKED[hf] = ok
            if not ok:
                log.warning("%s: its logits are not a plain projection of the final hidden state; log-probs come "
                            "from its full logits (chunked fp32) instead", type(hf).__name__)
        if ok:
            logps, ent = logprobs_from_hidden(hidden, head, targets, start=start, mask=mask, temperature=temperature,
                                              with_entropy=with_entropy, chunk_size=chunk_size, compute_dtype=cd)
            return TokenLogProbs(logps, ent, hidden, True)
    return logprobs_from_own_logits(model, input_ids, targets=targets, start=start, mask=mask,
                                    temperature=temperature, with_entropy=with_entropy, return_hidden=return_hidden,
                                    chunk_size=chunk_size, **model_kwargs)


def logprobs_from_own_logits(model, input_ids: torch.Tensor, *, targets: torch.Tensor | None = None, start: int = 0,
                             mask: torch.Tensor | None = None, temperature: float = 1.0, with_entropy: bool = False,
                             return_hidden: bool = False, chunk_size: int | None = None,
                             **model_kwargs) -> TokenLogProbs:
    """`logprobs_from_model` through the model's own logits (chunk-wise fp32, no fp32 copy): the path for
    sharded weights (ZeRO-3, FSDP), where the LM head's weight exists only inside its module's forward.
    With `start` > 0 the model projects only positions >= start (`logits_to_keep`), so a PPO response
    of R tokens after a long prompt holds [B, R+1, V] logits, not [B, T, V]."""
    targets = input_ids if targets is None else targets
    keep = _keep_kw(_unwrap(model)[0])
    offset = start if (keep is not None and start > 0) else 0
    if offset:
        model_kwargs[keep] = input_ids.shape[1] - offset
    if return_hidden:
        model_kwargs["output_hidden_states"] = True
    out = model(input_ids=input_ids, **model_kwargs)
    logps, ent = logprobs_from_logits(out.logits, targets[:, offset:], start=start - offset, mask=mask,
                                      temperature=temperature, with_entropy=with_entropy, chunk_size=chunk_size)
    return TokenLogProbs(logps, ent, out.hidden_states[-1] if return_hidden else None, False)


def final_hidden(model, input_ids: torch.Tensor, **model_kwargs) -> torch.Tensor:
    """The last hidden state [B, T, H] of `model` (a critic) without its full logits where possible."""
    parts = _lean_parts(model)
    if parts is not None:
        _hf, head, backbone, keep = parts
        with _capture(backbone, head) as seen:
            model(input_ids=input_ids, **{keep: 1}, **model_kwargs)
        hidden = seen.get("hidden")
        if isinstance(hidden, torch.Tensor) and hidden.dim() == 3 and hidden.shape[:2] == input_ids.shape:
            return hidden
    return model(input_ids=input_ids, output_hidden_states=True, **model_kwargs).hidden_states[-1]
