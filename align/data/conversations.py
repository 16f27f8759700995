"""SFT conversations: chat-message lists that end with the assistant turn to learn.

Why a separate loader: SFT data comes either as `messages` rows (the common chat format)
or as HelpSteer2 rows (`prompt` + `response`), and both must yield the same shape.
"""
from __future__ import annotations

from align.data.helpsteer import parse_helpsteer_prompt
from align.attributes import MAX_VALUE, MIN_VALUE
from align.data.sources import RowRef, int_field, load_table, require_columns, text_field

ROLES = ("system", "user", "assistant")


def check_messages(ref: RowRef, value, field: str, last_role: str) -> list[dict]:
    """Validate a message list: roles user/assistant/system (system only first), non-empty
    string contents, at least one user turn, and the last message has `last_role`.
    Returns plain copies {"role", "content"}."""
    if not isinstance(value, list) or not value:
        raise ref.field_error(field, "a non-empty list of {role, content} messages", value)
    out = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise ref.field_error(where, "an object with 'role' and 'content'", msg)
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES or (role == "system" and i != 0):
            raise ref.field_error(f"{where}.role", "user/assistant (or system as the first message)", role)
        if not isinstance(content, str) or not content.strip():
            raise ref.field_error(f"{where}.content", "a non-empty string", content)
        out.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in out):
        raise ref.error(f"field '{field}' has no user message")
    if out[-1]["role"] != last_role:
        raise ref.error(f"field '{field}' must end with {'an' if last_role == 'assistant' else 'a'} {last_role} message, got {out[-1]['role']}")
    return out


def load_conversations(source: str, split: str | None = None, *, data_dir: str | None = None,
                       min_attributes: dict[str, int] | None = None) -> list[list[dict]]:
    """One message list per row, from `messages` or HelpSteer2 `prompt` + `response`.

    `min_attributes` ({attribute: minimum}) keeps only HelpSteer2 rows rated at least that on each
    named attribute (e.g. {helpfulness: 3}); the ratings must then be present, and `messages` rows,
    which carry none, are an error.
    """
    out = []
    for ref, row in load_table(source, split, data_dir, split_column="split"):
        if min_attributes:
            if "messages" in row and "prompt" not in row:
                raise ref.error("min_attributes filters HelpSteer2 rows by their ratings; this row has "
                                "'messages' and no ratings")
            require_columns(ref, row, ("prompt", "response", *min_attributes))
            if any(int_field(ref, row, a, MIN_VALUE, MAX_VALUE) < low for a, low in min_attributes.items()):
                continue
        if "messages" in row:
            out.append(check_messages(ref, row["messages"], "messages", "assistant"))
        elif "prompt" in row and "response" in row:
            prompt = text_field(ref, row, "prompt")
            response = text_field(ref, row, "response")
            try:
                messages = parse_helpsteer_prompt(prompt)
            except ValueError as exc:
                raise ref.error(f"field 'prompt': {exc}") from None
            out.append(messages + [{"role": "assistant", "content": response}])
        else:
            have = ", ".join(sorted(map(str, row))) or "none"
            raise ref.error(f"expected a 'messages' column or 'prompt' and 'response' columns (columns: {have})")
    return out
