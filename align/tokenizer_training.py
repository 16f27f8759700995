"""Train a byte-level BPE tokenizer with a chat template on any text (the world's, or a user's files).

Why by hand: `tokenizers` trains the BPE model, but a causal LM here also needs a chat template,
pad/eos tokens chosen so generation stops at the end of the assistant turn, and a template whose
generation prompt is a token prefix of the full conversation (assistant-only loss masks rely on
it); this module puts those together once for every caller.

The chat template wraps each turn as <|role|>content<|end|> and adds no BOS, so BOS can never be
doubled; "<|end|>" is the eos_token.
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterable

SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # every byte, then the special tokens


def train_chat_tokenizer(texts: Iterable[str], out_dir, vocab_size: int = 1024, *, min_frequency: int = 2,
                         model_max_length: int = 1024):
    """Train on texts, save to out_dir (loadable with AutoTokenizer) and return the fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|end|>",
        additional_special_tokens=["<|eos|>", "<|user|>", "<|assistant|>", "<|system|>"],
        clean_up_tokenization_spaces=False, model_max_length=model_max_length)
    fast.chat_template = CHAT_TEMPLATE
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return fast
