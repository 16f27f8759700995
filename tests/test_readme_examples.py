"""The README's Python examples, as printed: every import works, and every block made only of
imports and definitions executes (the SimPO one is also trained by test_subclass.py, the
per-sequence SFT one is trained here)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_every_readme_import_works(i):
    tree = ast.parse(BLOCKS[i])
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(imports, type_ignores=[]), f"README block {i}", "exec"), {})  # noqa: S102


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_definition_only_blocks_execute(i):
    tree = ast.parse(BLOCKS[i])
    if not all(isinstance(n, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)) for n in tree.body):
        pytest.skip("the block runs against a trained run directory (its imports are checked above)")
    exec(compile(BLOCKS[i], f"README block {i}", "exec"), {})  # noqa: S102


def test_per_sequence_sft_example_trains(world_dir, tmp_path):
    from transformers import AutoTokenizer

    from align import TinyModelSpec, TrainConfig, load_conversations, tokenize_conversation
    from align.world.tiny_model import build_tiny_model

    block = next(b for b in BLOCKS if "class PerSequenceSFT" in b)
    ns: dict = {}
    exec(compile(block, "README", "exec"), ns)  # noqa: S102
    tok = AutoTokenizer.from_pretrained(world_dir / "tokenizer")
    examples = [tokenize_conversation(tok, c, max_length=128) for c in load_conversations(str(world_dir / "data" / "sft.jsonl"))[:64]]
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    trainer = ns["PerSequenceSFT"](model, tok, TrainConfig(lr=3e-3, batch_size=16, max_steps=8, save_every=0, log_every=1), tmp_path)
    m = trainer.train(examples)
    assert m["train/loss_final"] < m["train/loss_first"]
