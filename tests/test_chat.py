"""Assistant-only labels through any chat template; truncation and dropping; no template."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from align.chat import IGNORE_INDEX, tokenize_conversation
from align.errors import AlignError

CONV = [
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": "5."},
    {"role": "user", "content": "Now add 4 to that result."},
    {"role": "assistant", "content": "The answer is 9."},
]

# A ChatML-style template unlike the world's, to show the masking does not depend on one template.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tok(world_dir):
    return AutoTokenizer.from_pretrained(world_dir / "tokenizer")


def _learned_text(tok, ex):
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX])


def test_last_turn_only(tok):
    ex = tokenize_conversation(tok, CONV, max_length=512)
    assert _learned_text(tok, ex) == "The answer is 9.<|end|>"
    assert ex.labels[-1] == tok.eos_token_id  # the model learns to stop


def test_all_assistant_turns(tok):
    ex = tokenize_conversation(tok, CONV, max_length=512, which="all")
    assert _learned_text(tok, ex) == "5.<|end|>The answer is 9.<|end|>"


def test_other_template(tok):
    tok = AutoTokenizer.from_pretrained(tok.name_or_path)
    tok.chat_template = CHATML
    ex = tokenize_conversation(tok, CONV, max_length=512)
    learned = _learned_text(tok, ex)
    assert learned.startswith("The answer is 9.") and "What is" not in learned and "Now add" not in learned


def test_truncate_and_drop(tok):
    full = tokenize_conversation(tok, CONV, max_length=512)
    n = len(full.input_ids)
    cut = tokenize_conversation(tok, CONV, max_length=n - 2)
    assert cut.truncated and cut.input_ids == full.input_ids[: n - 2]
    assert tokenize_conversation(tok, CONV, max_length=n - 2, over_length="drop") is None
    # cutting off every learnable token drops the row rather than training on nothing
    assert tokenize_conversation(tok, CONV, max_length=10) is None


def test_tokenizer_without_template(tok):
    tok = AutoTokenizer.from_pretrained(tok.name_or_path)
    tok.chat_template = None
    with pytest.raises(AlignError, match="has no chat template"):
        tokenize_conversation(tok, CONV, max_length=512)
