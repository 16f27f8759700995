"""HelpSteer2 rows: flattened multi-turn prompts, five 0..4 attributes, prompt groups.

HelpSteer2 flattens earlier turns into `prompt` (SPEC.md section 1):
    {user1}\\n<extra_id_1>Assistant\\n{asst1}\\n<extra_id_1>User\\n{user2}
and `response` is the final assistant turn.

Assumptions where the dataset is silent (the released data has no system turns):
- A system block, if present, uses NeMo-Aligner's form and comes first:
      <extra_id_0>System\\n{system}\\n<extra_id_1>User\\n{user1}...
  An empty system block yields no system message.
- A prompt that starts with `<extra_id_1>User\\n` has that marker stripped.
- Separators are the exact strings `\\n<extra_id_1>User\\n` / `\\n<extra_id_1>Assistant\\n`;
  everything between them is content, kept byte for byte (no trimming). Content that
  itself contains a separator string cannot be told apart and is split there.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from align.attributes import ATTRIBUTES, MAX_VALUE, MIN_VALUE
from align.errors import DataError
from align.data.sources import int_field, load_table, require_columns, text_field

SYSTEM_HEADER = "<extra_id_0>System\n"
TURN_MARK = "<extra_id_1>"
ROLE_LABELS = {"user": "User", "assistant": "Assistant"}
_SEPARATOR = re.compile(r"\n<extra_id_1>(User|Assistant)\n")


def parse_helpsteer_prompt(prompt: str) -> list[dict]:
    """Chat messages from a flattened HelpSteer2 prompt; the last one is a user message.

    Raises ValueError for an empty prompt, a missing first user turn after a system block,
    or a prompt whose last turn is not a user turn (loaders turn it into a DataError).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt is empty")
    messages: list[dict] = []
    text = prompt
    if text.startswith(SYSTEM_HEADER):
        body = text[len(SYSTEM_HEADER):]
        user_mark = f"{TURN_MARK}User\n"
        if body.startswith(user_mark):  # empty system block
            system, rest = "", body[len(user_mark):]
        else:
            system, sep, rest = body.partition(f"\n{user_mark}")
            if not sep:
                raise ValueError("system block is not followed by a '<extra_id_1>User' turn")
        if system:
            messages.append({"role": "system", "content": system})
        text = rest
    elif text.startswith(f"{TURN_MARK}User\n"):
        text = text[len(f"{TURN_MARK}User\n"):]
    parts = _SEPARATOR.split(text)
    first = len(messages)
    messages.append({"role": "user", "content": parts[0]})
    for label, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": label.lower(), "content": content})
    _check_turns(messages[first:])
    return messages


def _check_turns(turns: list[dict]) -> None:
    """Turns alternate user/assistant from a user turn, end with a non-empty user turn, and hold
    no stray turn marker (an unknown role, a marker not on its own line, a leading Assistant)."""
    for i, msg in enumerate(turns, start=1):
        content = msg["content"]
        if TURN_MARK in content:
            at = content.index(TURN_MARK)
            shown = content[at:at + 30].split("\n")[0]
            if i == 1 and at == 0 and shown.startswith(f"{TURN_MARK}Assistant"):
                raise ValueError("the prompt starts with an Assistant turn; it must start with a user turn")
            raise ValueError(f"turn {i} holds the marker {shown!r}: a turn starts with '\\n{TURN_MARK}User\\n' "
                             f"or '\\n{TURN_MARK}Assistant\\n' (roles User and Assistant only)")
        if i > 1 and msg["role"] == turns[i - 2]["role"]:
            raise ValueError(f"turns {i - 1} and {i} are both {msg['role']} turns; user and assistant turns alternate")
    if turns[-1]["role"] != "user":
        raise ValueError("prompt must end with a user turn, not an assistant turn")
    if not turns[-1]["content"].strip():
        raise ValueError(f"the last user turn (turn {len(turns)}) is empty")


def flatten_messages(messages: list[dict]) -> str:
    """Inverse of `parse_helpsteer_prompt` (for writing HelpSteer2-format data)."""
    msgs = list(messages)
    out = ""
    if msgs and msgs[0].get("role") == "system":
        out = f"{SYSTEM_HEADER}{msgs[0]['content']}\n{TURN_MARK}User\n"
        msgs = msgs[1:]
    if not msgs or msgs[0].get("role") != "user":
        raise ValueError("messages must start with a user message (after an optional system one)")
    if msgs[-1].get("role") != "user":
        raise ValueError("messages must end with a user message")
    out += msgs[0]["content"]
    for msg in msgs[1:]:
        role = msg.get("role")
        if role not in ROLE_LABELS:
            raise ValueError(f"role {role!r} cannot appear after the first turn")
        out += f"\n{TURN_MARK}{ROLE_LABELS[role]}\n{msg['content']}"
    return out


@dataclass
class HelpSteerRow:
    """One rated response. `attributes[name]` is None when that label is missing."""

    prompt: str
    messages: list[dict]
    response: str
    attributes: dict[str, int | None] = field(default_factory=dict)


def load_helpsteer(
    source: str,
    split: str | None = None,
    *,
    require: tuple[str, ...] | list[str] = ATTRIBUTES,
    data_dir: str | None = None,
) -> list[HelpSteerRow]:
    """HelpSteer2-schema rows, checked: errors name the file and the row.

    Attributes in `require` must be present integers 0..4; the other ATTRIBUTES may be
    missing or None (kept as None, so a reward model can mask them).
    """
    unknown = [a for a in require if a not in ATTRIBUTES]
    if unknown:
        raise DataError(f"unknown attribute(s) {unknown}; known: {', '.join(ATTRIBUTES)}")
    out = []
    for ref, row in load_table(source, split, data_dir, split_column="split"):
        require_columns(ref, row, ("prompt", "response", *require))
        prompt = text_field(ref, row, "prompt")
        response = text_field(ref, row, "response")
        try:
            messages = parse_helpsteer_prompt(prompt)
        except ValueError as exc:
            raise ref.error(f"field 'prompt': {exc}") from None
        attrs: dict[str, int | None] = {}
        for name in ATTRIBUTES:
            if name not in require and row.get(name) is None:
                attrs[name] = None
            else:
                attrs[name] = int_field(ref, row, name, MIN_VALUE, MAX_VALUE)
        out.append(HelpSteerRow(prompt, messages, response, attrs))
    return out


def check_label_columns(rows: list[HelpSteerRow], source: str, wanted: list[str], absent: list[str] = (),
                        split: str | None = None) -> None:
    """Every attribute in `wanted` but not in `absent` is labelled in at least one row of `source`.

    A column missing or misspelt in a HelpSteer2 file would otherwise leave that head to train
    on no labels while its metrics were still reported. The error names near-miss columns.
    """
    import difflib

    missing = [a for a in wanted if a not in absent and rows and all(r.attributes.get(a) is None for r in rows)]
    if not missing:
        return
    columns = sorted({k for _ref, row in load_table(source, split, split_column="split") for k in row})
    hints = [f"column {c!r} looks like {m[0]!r}" for c in columns if c not in ATTRIBUTES
             for m in [difflib.get_close_matches(c.lower(), missing, n=1, cutoff=0.75)] if m]
    raise DataError(
        f"{source}: no row has a label for {', '.join(missing)} (the reward model predicts "
        f"{', '.join(wanted)}; columns found: {', '.join(columns)})" + (f"; {'; '.join(hints)}" if hints else "")
        + ". Add the column, or list it in the stage's absent_attributes to train without it")


def consecutive_groups(rows: list[HelpSteerRow]) -> list[list[HelpSteerRow]]:
    """Runs of adjacent rows with the same prompt (HelpSteer2's own layout)."""
    groups: list[list[HelpSteerRow]] = []
    for row in rows:
        if groups and groups[-1][0].prompt == row.prompt:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def group_by_prompt(rows: list[HelpSteerRow]) -> list[list[HelpSteerRow]]:
    """All rows sharing a prompt text, wherever they are; groups in first-seen order."""
    groups: dict[str, list[HelpSteerRow]] = {}
    for row in rows:
        groups.setdefault(row.prompt, []).append(row)
    return list(groups.values())
