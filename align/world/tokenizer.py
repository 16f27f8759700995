"""A small byte-level BPE tokenizer for the synthetic world, with a chat template.

Byte-level BPE decodes exactly, whatever a model emits. The chat template wraps each
turn as <|role|>content<|end|> and adds no BOS, so BOS can never be doubled; "<|end|>" is
the eos_token so ``generate`` stops at the end of the assistant turn, and rendering
messages[:-1] with add_generation_prompt=True is a token prefix of rendering all messages
(what assistant-only loss masks rely on).
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_world_tokenizer(texts: Iterable[str], out_dir, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train on texts, save to out_dir (loadable with AutoTokenizer) and return it."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|end|>",
        additional_special_tokens=["<|eos|>", "<|user|>", "<|assistant|>", "<|system|>"],
        clean_up_tokenization_spaces=False, model_max_length=1024)
    fast.chat_template = CHAT_TEMPLATE
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return fast
