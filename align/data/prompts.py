"""Prompts for generation (PPO rollouts, SteerLM 2.0 sampling, MT-Bench answers).

Accepted row shapes (first match wins): `prompt` (HelpSteer2 flattened string, parsed into
turns), `messages` (a list ending with a user turn), `turns` (MT-Bench: only the first
turn is used, the later turns depend on the model's own answers). Nothing is deduplicated:
HelpSteer2 repeats each prompt for its two responses, callers dedupe if they want to.
"""
from __future__ import annotations

from align.data.conversations import check_messages
from align.data.helpsteer import parse_helpsteer_prompt
from align.data.sources import load_table, text_field


def load_prompts(source: str, split: str | None = None, *, data_dir: str | None = None) -> list[list[dict]]:
    """One chat-message list per row, each ending with a user message."""
    out = []
    for ref, row in load_table(source, split, data_dir, split_column="split"):
        if "prompt" in row:
            prompt = text_field(ref, row, "prompt")
            try:
                out.append(parse_helpsteer_prompt(prompt))
            except ValueError as exc:
                raise ref.error(f"field 'prompt': {exc}") from None
        elif "messages" in row:
            out.append(check_messages(ref, row["messages"], "messages", "user"))
        elif "turns" in row:
            turns = row["turns"]
            if not isinstance(turns, list) or not turns:
                raise ref.field_error("turns", "a non-empty list of strings", turns)
            first = text_field(ref, {"turns[0]": turns[0]}, "turns[0]")
            out.append([{"role": "user", "content": first}])
        else:
            have = ", ".join(sorted(map(str, row))) or "none"
            raise ref.error(f"expected a 'prompt', 'messages' or 'turns' column (columns: {have})")
    return out
