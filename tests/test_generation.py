"""The compacting decode loop: same greedy tokens as transformers.generate while rows leave the batch."""
from __future__ import annotations

import torch

from align.config.model_spec import ModelSpec
from align.decode import decode_compacting, sample_next
from align.generation import SamplingConfig, generate
from align.models import load_model
from tests.helpers import TINY


def _model(world_dir):
    model, tok = load_model(ModelSpec(tiny=TINY, tokenizer=str(world_dir / "tokenizer")), seed=3)
    return model.eval(), tok


def test_greedy_matches_transformers_generate_with_rows_finishing(world_dir):
    model, tok = _model(world_dir)
    prompts = [[{"role": "user", "content": f"What is {a} plus {b}?" + " Please." * a}] for a in range(6)
               for b in range(2)]
    hf = generate(model, tok, prompts, SamplingConfig(max_new_tokens=12, compact=False))
    # Declare as EOS a token that the untrained model emits mid-way in some rows, so rows finish at
    # different steps and the compacting loop really drops rows.
    counts = torch.bincount(torch.tensor([t for r in hf for t in tok(r[0], add_special_tokens=False)["input_ids"]]))
    stop = int(counts.argmax())
    model.generation_config.eos_token_id = stop
    hf = generate(model, tok, prompts, SamplingConfig(max_new_tokens=12, compact=False))
    ours = generate(model, tok, prompts, SamplingConfig(max_new_tokens=12, compact=True))
    assert ours == hf
    lengths = {len(tok(r[0])["input_ids"]) for r in hf}
    assert len(lengths) > 1  # rows did finish at different steps


def test_decode_drops_finished_rows_but_keeps_order():
    class Counter(torch.nn.Module):
        """A fake LM whose next token is (last token + 1); token 5 is EOS."""

        def forward(self, input_ids, attention_mask, position_ids, past_key_values=None, use_cache=True, **kwargs):
            from transformers import DynamicCache

            cache = past_key_values or DynamicCache()
            k = torch.zeros(input_ids.shape[0], 1, input_ids.shape[1], 2)
            cache.update(k, k, 0)
            logits = torch.nn.functional.one_hot((input_ids[:, -1] + 1) % 8, 8).float()[:, None, :]
            return type("Out", (), {"logits": logits, "past_key_values": cache})()

    ids = torch.tensor([[0, 3], [0, 1], [0, 4]])
    mask = torch.ones_like(ids)
    out = decode_compacting(Counter(), ids, mask, max_new_tokens=6, eos_ids=[5])
    assert out == [[4, 5], [2, 3, 4, 5], [5]]


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, 1.0, 0.7, g)) for _ in range(200)}
    assert draws == {0, 1}  # 0.5 + 0.3 reaches 0.7; 2 and 3 are never drawn
    assert int(sample_next(logits, 0.0, 1.0, None)) == 0


def test_prefill_by_length_groups_matches_transformers_generate(world_dir, monkeypatch):
    """Prompts of very different lengths, not sorted: the prefill runs them in length groups into
    one cache, and the greedy tokens, in the input order, equal transformers.generate's on the
    same left-padded batch, and those of a single prefill call."""
    from align import decode
    from align.chat import pad_with_mask

    model, tok = _model(world_dir)
    texts = ["What is 2 plus 3?" + " Please." * 12, "Hi.", "Say cat." + " Please." * 11, "Add 1 and 2.", "Ok?"]
    ids, mask = pad_with_mask([tok(t, add_special_tokens=False)["input_ids"] for t in texts], tok.pad_token_id,
                              left=True)
    assert len(decode._length_groups(sorted(mask.sum(-1).tolist()), decode._CALL_COST_CPU)) > 1
    # EOS: a token the model emits mid-way in some rows, so rows also leave the merged cache.
    first = decode_compacting(model, ids, mask, max_new_tokens=10, eos_ids=[-1])
    stop = max({t for r in first for t in r[2:]}, key=lambda t: sum(r.count(t) for r in first))
    ours = decode_compacting(model, ids, mask, max_new_tokens=10, eos_ids=[stop])
    hf = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, eos_token_id=stop,
                        pad_token_id=tok.pad_token_id)[:, ids.shape[1]:].tolist()
    assert ours == [r[: r.index(stop) + 1] if stop in r else r for r in hf]
    assert len({len(r) for r in ours}) > 1
    monkeypatch.setattr(decode, "_length_groups", lambda lengths, call_cost: [(0, len(lengths))])
    assert ours == decode_compacting(model, ids, mask, max_new_tokens=10, eos_ids=[stop])
