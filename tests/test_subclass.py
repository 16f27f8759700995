"""The README's "Subclass a trainer" SimPO example, run exactly as written."""
import math
import re
from pathlib import Path

import pytest
import torch

from align.config.base import TrainConfig
from align.config.model_spec import TinyModelSpec
from align.data import load_helpsteer, pairs_from_ratings
from align.trainers.dpo import tokenize_pair
from align.world.generator import generate_world
from align.world.tiny_model import build_tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"


def _simpo_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if "class SimPOTrainer" in b]
    assert len(found) == 1, "README must hold exactly one SimPOTrainer example"
    return found[0]


def test_readme_example_is_under_40_lines():
    assert len(_simpo_source().strip().splitlines()) < 40


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("world")
    paths = generate_world(root, prompts=80, test_prompts=5)
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    pairs = pairs_from_ratings(load_helpsteer(str(paths["helpsteer_train"])))[:24]
    return root, tok, [tokenize_pair(tok, p.messages, p.chosen, p.rejected, p.strength) for p in pairs]


def test_simpo_subclass_loss_and_training(world):
    root, tok, examples = world
    namespace: dict = {}
    exec(compile(_simpo_source(), str(README), "exec"), namespace)  # noqa: S102  (our own README code)
    SimPOTrainer = namespace["SimPOTrainer"]
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    trainer = SimPOTrainer(model, tok, TrainConfig(lr=3e-3, batch_size=8, max_steps=12, save_every=0), root / "simpo",
                           beta=2.0)
    # The loss on one batch equals the SimPO formula computed by hand from per-token log-probs.
    batch = trainer.collate(examples[:4])
    loss, _ = trainer.compute_loss(model, batch)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.log_softmax(-1)
    expected = []
    for i in range(4):
        avg = []
        for row in (i, i + 4):
            pos = batch["completion_mask"][row].nonzero().flatten()
            lp = [logits[row, t - 1, batch["input_ids"][row, t]].item() for t in pos.tolist()]
            avg.append(sum(lp) / len(lp))
        expected.append(-math.log(1 / (1 + math.exp(-(2.0 * (avg[0] - avg[1]) - 0.5)))))
    assert loss.item() == pytest.approx(sum(expected) / 4, rel=1e-4)
    # And it trains: the loss on the training pairs falls.
    metrics = trainer.train(examples)
    assert metrics["train/steps"] == 12
    after, _ = trainer.compute_loss(trainer.unwrapped_model(), trainer.collate(examples))
    before, _ = SimPOTrainer(build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0), tok,
                             TrainConfig(), root / "simpo0", beta=2.0).compute_loss(
        build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0), trainer.collate(examples))
    assert after.item() < before.item()
