"""The synthetic world's tokenizer: a small byte-level BPE with a chat template
(align.tokenizer_training, which a user's own data trains through too).

Byte-level BPE decodes exactly, whatever a model emits.
"""
from __future__ import annotations

from collections.abc import Iterable

from align.tokenizer_training import CHAT_TEMPLATE, SPECIAL_TOKENS, train_chat_tokenizer

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "train_world_tokenizer"]


def train_world_tokenizer(texts: Iterable[str], out_dir, vocab_size: int = 1024):
    """Train on texts, save to out_dir (loadable with AutoTokenizer) and return it."""
    return train_chat_tokenizer(texts, out_dir, vocab_size, min_frequency=0, model_max_length=1024)
