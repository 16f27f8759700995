"""Parity with TRL: one SGD step of our DPO and of trl.DPOTrainer from the same weights and batch."""
import copy

import pytest
import torch

from align.config.base import TrainConfig
from align.config.model_spec import TinyModelSpec
from align.data import load_helpsteer, pairs_from_ratings
from align.trainers.dpo import DPOTrainer, tokenize_pair
from align.world.generator import generate_world
from align.world.tiny_model import build_tiny_model

BATCH, LR, BETA = 6, 0.5, 0.1  # a large LR so the step moves parameters well beyond 1e-5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("world")
    paths = generate_world(root, prompts=60, test_prompts=5)
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    pairs = pairs_from_ratings(load_helpsteer(str(paths["helpsteer_train"])))[:BATCH]
    assert len(pairs) == BATCH
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    return tok, pairs, model, root


def _our_step(model, tok, pairs, root, loss_type):
    cfg = TrainConfig(lr=LR, batch_size=BATCH, max_grad_norm=None)
    trainer = DPOTrainer(model, tok, cfg, root / f"ours-{loss_type}", beta=BETA, loss_type=loss_type)
    examples = [tokenize_pair(tok, p.messages, p.chosen, p.rejected, p.strength) for p in pairs]
    trainer.precompute_reference(examples)
    loss, _ = trainer.compute_loss(model, trainer.collate(examples))
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= LR * p.grad
    return loss.item()


def _trl_step(model, tok, pairs, root, loss_type):
    from datasets import Dataset
    from trl import DPOConfig
    from trl import DPOTrainer as TRLDPOTrainer

    rows = [{"prompt": p.messages, "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    args = DPOConfig(output_dir=str(root / f"trl-{loss_type}"), per_device_train_batch_size=BATCH, max_steps=1,
                     learning_rate=LR, loss_type=loss_type,
                     optim="sgd", lr_scheduler_type="constant", max_grad_norm=0.0, beta=BETA, report_to=[],
                     use_cpu=True, bf16=False, logging_steps=1, save_strategy="no", weight_decay=0.0, warmup_steps=0,
                     dataloader_drop_last=False)
    trainer = TRLDPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args,
                            train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    return trainer.model


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])  # ipo: per-token means, our default and TRL's form
def test_one_sgd_step_matches_trl(setup, loss_type):
    tok, pairs, model, root = setup
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    _our_step(ours, tok, pairs, root, loss_type)
    theirs = _trl_step(theirs, tok, pairs, root, loss_type)
    start = dict(model.named_parameters())
    moved, worst = 0.0, 0.0
    for name, p in ours.named_parameters():
        q = dict(theirs.named_parameters())[name]
        worst = max(worst, (p.detach() - q.detach()).abs().max().item())
        moved = max(moved, (p.detach() - start[name].detach()).abs().max().item())
    assert moved > 1e-3, "the step did not move the parameters: the comparison would be empty"
    assert worst < 1e-5, f"max parameter difference {worst:.3g}"


def test_precomputed_reference_equals_each_pair_alone(setup):
    """The reference pass runs in length order (less padding): every pair still gets its own log-probs."""
    tok, _, model, root = setup
    pairs = pairs_from_ratings(load_helpsteer(str(root / "data" / "helpsteer_train.jsonl")))[:24]
    examples = [tokenize_pair(tok, p.messages, p.chosen, p.rejected, p.strength) for p in pairs]
    assert len({len(e.chosen_ids) + len(e.rejected_ids) for e in examples}) > 4  # lengths differ
    trainer = DPOTrainer(model, tok, TrainConfig(lr=LR, batch_size=3), root / "precompute", beta=BETA)
    trainer.precompute_reference(examples)
    for e in examples:
        alone_c, alone_r = trainer.reference_logps(trainer.collate([e])).tolist()
        assert e.ref_chosen == pytest.approx(alone_c, abs=1e-4)
        assert e.ref_rejected == pytest.approx(alone_r, abs=1e-4)
