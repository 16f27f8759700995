"""train.group_by_length: batches of similar length for every trainer, with the padding it saves
as a metric (train/pad_fraction), the same examples per epoch, and a resumable order."""
from __future__ import annotations

import pytest

from align import TinyModelSpec, TrainConfig, load_conversations, tokenize_conversation
from align.trainers.base import LengthGroupedSampler, example_length


def test_sampler_is_a_permutation_of_similar_length_batches():
    lengths = [(i * 37) % 200 + 1 for i in range(640)]
    s = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    s.set_epoch(1)
    order = list(s)
    assert sorted(order) == list(range(640))
    assert order == list(s)  # (seed, epoch) decide it: a resumed run sees the same order

    def spread(idx):
        batches = [idx[i:i + 8] for i in range(0, len(idx), 8)]
        return sum(max(lengths[j] for j in b) - min(lengths[j] for j in b) for b in batches) / len(batches)

    import random
    shuffled = list(range(640))
    random.Random(0).shuffle(shuffled)
    assert spread(order) < 0.2 * spread(shuffled)


@pytest.mark.parametrize("grouped", [False, True])
def test_sft_reports_its_padding(world_dir, tmp_path, grouped):
    from transformers import AutoTokenizer

    from align import SFTTrainer
    from align.world.tiny_model import build_tiny_model

    tok = AutoTokenizer.from_pretrained(world_dir / "tokenizer")
    convs = load_conversations(str(world_dir / "data" / "sft.jsonl"))[:256]
    examples = [tokenize_conversation(tok, c, max_length=128) for c in convs]
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    cfg = TrainConfig(lr=3e-3, batch_size=16, epochs=1, save_every=0, log_every=1, group_by_length=grouped)
    m = SFTTrainer(model, tok, cfg, tmp_path).train(examples)
    assert m["train/steps"] == 16 and m["train/loss_final"] < m["train/loss_first"]
    assert 0.0 <= m["train/pad_fraction"] < 1.0
    lengths = [example_length(e) for e in examples]
    padded_sorted = 1 - sum(lengths) / sum(16 * max(sorted(lengths)[i:i + 16]) for i in range(0, 256, 16))
    if grouped:  # within a window of 32 batches everything is sorted: padding as low as fully sorted
        assert m["train/pad_fraction"] == pytest.approx(padded_sorted, abs=1e-6)
    else:
        assert m["train/pad_fraction"] > padded_sorted + 0.05


@pytest.mark.parametrize("eval_every, evaluations", [(8, 2), (5, 4)])
def test_the_final_evaluation_reuses_one_made_at_the_last_step(world_dir, tmp_path, eval_every, evaluations):
    """16 steps: with eval_every 8 the step-16 evaluation is the final one (2 in all); with 5, steps
    5, 10, 15 and a final one at 16 (4)."""
    from transformers import AutoTokenizer

    from align import SFTTrainer
    from align.world.tiny_model import build_tiny_model

    tok = AutoTokenizer.from_pretrained(world_dir / "tokenizer")
    convs = load_conversations(str(world_dir / "data" / "sft.jsonl"))[:288]
    examples = [tokenize_conversation(tok, c, max_length=128) for c in convs]
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    cfg = TrainConfig(lr=3e-3, batch_size=16, epochs=1, save_every=0, log_every=4, eval_every=eval_every)
    trainer = SFTTrainer(model, tok, cfg, tmp_path)
    seen = []
    trainer.on_evaluate = lambda metrics: seen.append((trainer.global_step, metrics["eval/loss"]))
    m = trainer.train(examples[:256], examples[256:])
    assert m["train/steps"] == 16 and len(seen) == evaluations
    assert seen[-1][0] == 16 and m["eval/loss"] == seen[-1][1]  # the figures of the model as it ended
