"""A decode loop that drops finished rows from the batch and the KV cache.

`transformers.generate` keeps computing every row of a batch until its longest response
ends; with responses of very different lengths most of that work is padding. Here each
step runs only the rows still generating: when a row emits EOS it leaves the batch and
its slice of the KV cache is dropped (`Cache.batch_select_indices`). Greedy decoding
gives the same tokens as `generate`; sampling uses temperature and nucleus (top-p) with
its own seeded generator.

For a small model a step costs more in allocation and bookkeeping than in arithmetic, so:
- the prefill runs prompts of very different lengths in groups, each padded only to its
  own longest prompt, straight into one cache for the batch (`_prefill`);
- each plain `DynamicLayer` of the cache then lives in a buffer with room for the new
  tokens (`_AppendingLayer`): a step writes one position in place, where
  `DynamicLayer.update` copies the whole cache into a new tensor with `torch.cat`;
- the attention mask (for sdpa, the 4D boolean mask that transformers would otherwise
  rebuild at each step) is built once and sliced; a step's positions are the prompt
  lengths plus the step;
- EOS checks run on the one host copy of the sampled tokens that the results need anyway.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

# Prefill cost of one more model call, in prompt positions, for `_length_groups`. On CPU
# with the quickstart model a call costs ~1.4 ms and a position ~25 us. On an accelerator a
# forward's fixed cost is reading every weight once, about the time it takes to compute a
# few hundred positions, so prompts are split into groups far less readily there.
_CALL_COST_CPU = 64
_CALL_COST_ACCELERATOR = 512


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None):
    """logits [k, V] -> next token ids [k]: argmax when temperature is 0, else top-p sampling."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        # The nucleus almost always lies in the top few dozen tokens: sort those, not the vocabulary.
        top = min(64, probs.shape[-1])
        sorted_p, order = probs.topk(top, dim=-1)
        reached = sorted_p.sum(-1) >= top_p
        if not bool(reached.all()):
            # Sort in full the rows whose nucleus reaches past their top `top`. The other rows keep
            # their top `top` then zeros: the rest of such a row lies outside its nucleus, zeroed below.
            rows = (~reached).nonzero().squeeze(-1)
            full_p, full_order = probs.new_zeros(probs.shape), order.new_zeros(probs.shape)
            full_p[:, :top], full_order[:, :top] = sorted_p, order
            full_p[rows], full_order[rows] = probs[rows].sort(dim=-1, descending=True)
            sorted_p, order = full_p, full_order
        outside = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest prefix reaching top_p
        sorted_p.masked_fill_(outside, 0.0)
        pick = torch.multinomial(sorted_p.cpu(), 1, generator=generator).to(order.device)
        return order.gather(-1, pick).squeeze(-1)
    choice = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1)
    return choice.to(logits.device)


class _AppendingLayer(DynamicLayer):
    """A `DynamicLayer` whose keys/values are the first `length` positions of buffers with room for more.

    `update` writes the new positions in place; `DynamicLayer.update` would `torch.cat` the
    whole cache into a new tensor at every step. Only used inside `decode_compacting`.
    """

    def __init__(self, k_buf: torch.Tensor, v_buf: torch.Tensor, length: int):
        super().__init__()
        self._k, self._v, self._length = k_buf, v_buf, length
        self.dtype, self.device = k_buf.dtype, k_buf.device
        self._views()
        self.is_initialized = True

    @classmethod
    def holding(cls, keys: torch.Tensor, values: torch.Tensor, extra: int) -> _AppendingLayer:
        """A copy of `keys`/`values` [B, H, L, D] with room for `extra` more positions."""
        length = keys.shape[-2]
        k_buf = keys.new_empty(*keys.shape[:-2], length + extra, keys.shape[-1])
        v_buf = values.new_empty(*values.shape[:-2], length + extra, values.shape[-1])
        k_buf[..., :length, :], v_buf[..., :length, :] = keys, values
        return cls(k_buf, v_buf, length)

    def _views(self) -> None:
        self.keys = self._k[..., : self._length, :]
        self.values = self._v[..., : self._length, :]

    def update(self, key_states, value_states, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._k.shape[-2]:  # out of room: fall back to growing by concatenation
            self._k = torch.cat([self.keys, key_states], dim=-2)
            self._v = torch.cat([self.values, value_states], dim=-2)
        else:
            self._k[..., self._length : end, :].copy_(key_states)
            self._v[..., self._length : end, :].copy_(value_states)
        self._length = end
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices`: their filled positions move into a new buffer with the same room."""
        self._k = self._select(self._k, self.keys, indices)
        self._v = self._select(self._v, self.values, indices)
        self._views()

    @staticmethod
    def _select(buf: torch.Tensor, filled: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        out = buf.new_empty(len(indices), *buf.shape[1:])
        torch.index_select(filled, 0, indices, out=out[..., : filled.shape[-2], :])
        return out


class _GroupSlot(_AppendingLayer):
    """One layer's cache for the prefill of rows `rows` (a slice), padded to `width - offset` positions.

    It writes straight into those rows of the batch's buffers, at `offset` and after, so the
    groups' prefills leave one left-padded cache for the whole batch without a copy. The first
    group to reach this layer allocates the buffers in `store`: [batch, H, room, D].
    """

    def __init__(self, store: dict, rows: slice, offset: int, batch: int, room: int):
        DynamicLayer.__init__(self)
        self.store, self.rows, self.offset, self.batch, self.room = store, rows, offset, batch, room
        self._length = 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            if not self.store:
                shape = (self.batch, key_states.shape[1], self.room)
                self.store["k"] = key_states.new_empty(*shape, key_states.shape[-1])
                self.store["v"] = value_states.new_empty(*shape, value_states.shape[-1])
            self._k = self.store["k"][self.rows, :, self.offset :]
            self._v = self.store["v"][self.rows, :, self.offset :]
            self.dtype, self.device = key_states.dtype, key_states.device
            self.is_initialized = True
        return super().update(key_states, value_states)


def _length_groups(lengths: list[int], call_cost: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of the ascending `lengths` for the prefill, each range padded
    only to its own longest prompt.

    The cut minimises (positions computed, padding included) + `call_cost` x (model calls):
    a prompt of 8 tokens in a batch with one of 35 otherwise costs 35 positions. Exact
    dynamic programme over the distinct lengths.
    """
    # ends[j]: the end of the rows of the (j + 1)-th distinct length; a range never splits a length.
    ends = [i + 1 for i in range(len(lengths)) if i + 1 == len(lengths) or lengths[i + 1] != lengths[i]]
    best, cut = [0] + [None] * len(ends), [0] * (len(ends) + 1)  # best[j]: least cost of rows [0, ends[j - 1])
    for j in range(1, len(ends) + 1):
        for i in range(j):  # last range: rows [ends[i - 1], ends[j - 1]), padded to the longest of them
            start = ends[i - 1] if i else 0
            cost = best[i] + call_cost + (ends[j - 1] - start) * lengths[ends[j - 1] - 1]
            if best[j] is None or cost < best[j]:
                best[j], cut[j] = cost, i
    ranges, j = [], len(ends)
    while j > 0:
        ranges.append((ends[cut[j] - 1] if cut[j] else 0, ends[j - 1]))
        j = cut[j]
    return ranges[::-1]


def _cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: `cache` from transformers 5.2x (which deprecates
    `past_key_values`, to be removed in 5.40), `past_key_values` before that."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft forwards **kwargs
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _out_cache(out):
    """The KV cache a forward returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, lengths: list[int], extra: int):
    """Run the left-padded prompts [B, P], rows in ascending order of `lengths` (their real
    lengths); return (logits of the last position [B, V], cache).

    The rows run in ranges (`_length_groups`), each padded only to its own longest prompt,
    into one left-padded cache of length P with room for `extra` new positions, the layout a
    single call gives. A model whose cache is not made of plain `DynamicLayer`s, or that does
    not take the cache it is given, runs all rows in one call into its own cache instead.
    """
    batch, width = input_ids.shape
    cache = _plain_cache(model)
    if cache is not None:
        call_cost = _CALL_COST_CPU if input_ids.device.type == "cpu" else _CALL_COST_ACCELERATOR
        ranges = _length_groups(lengths, call_cost)
        stores = [{} for _ in cache.layers]
        logits = []
        for start, stop in ranges:
            group = lengths[stop - 1]
            cache.layers = [_GroupSlot(store, slice(start, stop), width - group, batch, width + extra)
                            for store in stores]
            ids, mask = input_ids[start:stop, width - group :], attention_mask[start:stop, width - group :]
            out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                        **{_cache_kwarg(model): cache}, use_cache=True, logits_to_keep=1)
            if _out_cache(out) is not cache or not all(layer.is_initialized for layer in cache.layers):
                break
            logits.append(out.logits[:, -1])
        else:
            for start, stop in ranges:  # before a shorter range's prompts: masked out, zero adds nothing
                for store in stores:
                    store["k"][start:stop, :, : width - lengths[stop - 1]].zero_()
                    store["v"][start:stop, :, : width - lengths[stop - 1]].zero_()
            cache.layers = [_AppendingLayer(store["k"], store["v"], width) for store in stores]
            return torch.cat(logits), cache
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=(attention_mask.cumsum(-1) - 1).clamp_min(0), use_cache=True, logits_to_keep=1)
    cache = _out_cache(out)
    if not hasattr(cache, "batch_select_indices"):
        raise TypeError("model cache cannot drop rows")
    for i, layer in enumerate(getattr(cache, "layers", None) or []):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None and layer.keys.dim() == 4:
            cache.layers[i] = _AppendingLayer.holding(layer.keys, layer.values, extra)
    return out.logits[:, -1], cache


def _plain_cache(model):
    """An empty `DynamicCache` for `model` if all its layers are plain `DynamicLayer`s (full attention), else None."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "get_text_config"):
        return None
    try:
        cache = DynamicCache(config=config)
    except (AttributeError, KeyError, TypeError, ValueError):  # layer types it cannot read: the model's own cache
        return None
    layers = getattr(cache, "layers", None)
    return cache if layers and all(type(layer) is DynamicLayer for layer in layers) else None


def _sdpa_full_attention(model, cache) -> bool:
    """Whether every layer attends to the whole cache through sdpa (so one 4D boolean mask serves all)."""
    layers = getattr(cache, "layers", None)
    return (getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
            and isinstance(layers, list) and bool(layers) and all(type(layer) is _AppendingLayer for layer in layers))


@torch.inference_mode()
def decode_compacting(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
                      eos_ids: list[int], temperature: float = 0.0, top_p: float = 1.0,
                      generator: torch.Generator | None = None,
                      stop_row: Callable[[int], bool] | None = None, lean: bool = True) -> list[list[int]]:
    """New tokens for each left-padded row of `input_ids` [B, P] (EOS included when emitted).

    `stop_row(row)`, asked after every step, ends a row early (its tokens so far are kept): a
    server drops the rows of a request whose client has gone, and the batch goes on without them.
    `lean`: decode steps of a plain Llama run as flat tensor ops (`align.lean_decode`), not
    through the model's forward (False: always the forward; the benchmark compares both).
    """
    from align.lean_decode import LeanLlamaStep, supported

    device = input_ids.device
    batch, prompt_len = input_ids.shape
    eos = set(eos_ids)
    # Rows in ascending order of prompt length (`generate` passes them so already).
    lengths = attention_mask.sum(-1).clamp_min(1).tolist()
    rows = sorted(range(batch), key=lengths.__getitem__)  # original row of each live row
    if rows != list(range(batch)):
        order = torch.tensor(rows, device=device)
        input_ids, attention_mask, lengths = input_ids[order], attention_mask[order], sorted(lengths)
    logits, cache = _prefill(model, input_ids, attention_mask, lengths, max_new_tokens)
    # The mask for every step at once (the prompt's, then ones), sliced to the current length;
    # the position of the token fed at step s is (the row's real prompt length) + s.
    mask = torch.cat([attention_mask, attention_mask.new_ones(batch, max_new_tokens)], dim=-1)
    lean_step = None
    if _sdpa_full_attention(model, cache):
        lean_step = LeanLlamaStep(model) if lean and supported(model) else None
        # sdpa takes the boolean [rows, 1, 1, keys] mask that transformers would rebuild from the 2D
        # mask at every step (one query, all keys in the past): pass a view of this one instead.
        mask = mask.bool()[:, None, None, :]
    next_pos = attention_mask.sum(-1, keepdim=True)
    results: list[list[int]] = [[] for _ in range(batch)]
    for step in range(max_new_tokens):
        tokens = sample_next(logits, temperature, top_p, generator)
        sampled = tokens.tolist()
        keep = []
        for i, (row, tok) in enumerate(zip(rows, sampled)):
            results[row].append(tok)
            if tok not in eos and not (stop_row is not None and stop_row(row)):
                keep.append(i)
        if step == max_new_tokens - 1 or not keep:
            break
        if len(keep) < len(rows):
            rows = [rows[i] for i in keep]
            keep_t = torch.tensor(keep, device=device)
            cache.batch_select_indices(keep_t)
            tokens, mask, next_pos = tokens[keep_t], mask[keep_t], next_pos[keep_t]
        if lean_step is not None:
            logits = lean_step(tokens, next_pos + step, mask[..., : prompt_len + step + 1], cache)
        else:
            out = model(input_ids=tokens[:, None], attention_mask=mask[..., : prompt_len + step + 1],
                        position_ids=next_pos + step, **{_cache_kwarg(model): cache}, use_cache=True,
                        logits_to_keep=1)
            cache, logits = _out_cache(out), out.logits[:, -1]
    return results
