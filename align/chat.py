"""Chat formatting through the tokenizer's own template, and assistant-only loss labels.

Any chat template works: we render the conversation as text, find where each assistant
turn sits by rendering the conversation up to it, and label only the tokens that fall
inside that span (offsets from the fast tokenizer). The end-of-turn marker the template
puts after the assistant text is part of the span, so the model learns to stop.
"""
from __future__ import annotations

from dataclasses import dataclass

from align.errors import AlignError, ConfigError

IGNORE_INDEX = -100


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer, messages: list[dict], *, add_generation_prompt: bool = False) -> str:
    if not has_chat_template(tokenizer):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ConfigError([
            f"tokenizer {name!r} has no chat template: use an instruct/chat tokenizer, or give the stage's "
            "model a template in the recipe (model: {..., chat_template: path/to/template.jinja}, or the Jinja "
            "text itself)"])
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def render_prompts(tokenizer, prompts: list[list[dict]], prompt_suffix: str | list[str] = "") -> list[str]:
    """Each chat prompt through the template with the generation prompt, then its suffix: one text for
    every prompt (SteerLM's attribute prefix at one target) or one per prompt (a target per prompt)."""
    suffixes = prompt_suffix if isinstance(prompt_suffix, list) else [prompt_suffix] * len(prompts)
    if len(suffixes) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(suffixes)} prompt suffixes")
    return [render(tokenizer, p, add_generation_prompt=True) + s for p, s in zip(prompts, suffixes)]


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def assistant_spans(tokenizer, messages: list[dict], which: str = "last") -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of the assistant turns to learn.

    which: 'last' (only the final assistant turn: HelpSteer2's response) or 'all'.
    """
    full = render(tokenizer, messages)
    idx = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not idx:
        raise AlignError("conversation has no assistant turn to learn from")
    if which == "last":
        idx = idx[-1:]
    spans = []
    for i in idx:
        prefix = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if full.startswith(upto) and upto.startswith(prefix):
            spans.append((len(prefix), len(upto)))
            continue
        # Templates that rewrite earlier turns (e.g. strip reasoning): locate the content itself.
        content = messages[i]["content"]
        start = full.find(content, len(prefix) - len(content) if len(prefix) > len(content) else 0)
        if start < 0:
            raise AlignError("cannot locate the assistant turn in the rendered chat template")
        spans.append((start, start + len(content)))
    return full, spans


def tokenize_conversation(
    tokenizer,
    messages: list[dict],
    *,
    max_length: int,
    over_length: str = "truncate",
    which: str = "last",
) -> TokenizedExample | None:
    """input_ids and labels (IGNORE_INDEX outside assistant spans). None when dropped as too long."""
    text, spans = assistant_spans(tokenizer, messages, which)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [
        tok if any(s <= start < e for s, e in spans) else IGNORE_INDEX for tok, (start, _end) in zip(ids, offsets)
    ]
    truncated = len(ids) > max_length
    if truncated:
        if over_length == "drop":
            return None
        ids, labels = ids[:max_length], labels[:max_length]
        if all(lab == IGNORE_INDEX for lab in labels):
            return None  # nothing left to learn from
    return TokenizedExample(ids, labels, truncated)


def pad_with_mask(sequences: list[list[int]], pad_value: int, *, left: bool = False):
    """(ids, attention_mask) for lists of token ids, padded right (training) or left (generation)."""
    ids = pad_batch(sequences, pad_value, left=left)
    mask = pad_batch([[1] * len(s) for s in sequences], 0, left=left)
    return ids, mask


def pad_batch(sequences: list[list[int]], pad_value: int, *, left: bool = False):
    """Stack lists of ids into a tensor, padding right (training) or left (generation)."""
    import torch

    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if left:
            out[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        else:
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out
