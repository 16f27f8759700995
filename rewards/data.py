"""(prompt messages, response) -> token ids, the same way for training and scoring.

The conversation goes through the tokenizer's own chat template (align.chat.render), so
multi-turn HelpSteer2 prompts keep their turns. Over-long sequences lose their *start*:
the head reads the last token, so the response end must survive truncation.
"""
from __future__ import annotations

from dataclasses import dataclass

from align.chat import render


def encode_response(tokenizer, messages: list[dict], response: str, max_length: int) -> tuple[list[int], bool]:
    """Token ids of the rendered chat ending with `response`; (ids, truncated)."""
    text = render(tokenizer, [*messages, {"role": "assistant", "content": response}])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > max_length:
        return ids[-max_length:], True
    return ids, False


@dataclass
class RegressionExample:
    """One rated response: ids and labels [A] (None where the label is missing)."""

    input_ids: list[int]
    labels: list[float | None]


@dataclass
class PairExample:
    """One preference pair: chosen and rejected ids, strength m = |preference_strength| >= 0."""

    chosen_ids: list[int]
    rejected_ids: list[int]
    strength: float
