"""Plain text for training a tokenizer: every string in a data file, or the lines of a text file.

A table (.jsonl/.json/.parquet, a save_to_disk directory, a hub id) gives each row's string
fields, the contents of its `messages`, and the turns of a HelpSteer2 `prompt` (its
`<extra_id_1>` markers are structure, not text); a .txt or .md file gives its lines.
"""
from __future__ import annotations

from pathlib import Path

from align.data.helpsteer import parse_helpsteer_prompt
from align.data.sources import load_table
from align.errors import DataError
from align.io_utils import decode_utf8

TEXT_SUFFIXES = (".txt", ".md")


def _row_texts(row: dict) -> list[str]:
    out = []
    for key, value in row.items():
        if key == "prompt" and isinstance(value, str):
            try:
                out.extend(m["content"] for m in parse_helpsteer_prompt(value))
                continue
            except ValueError:
                pass
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(m["content"] for m in value if isinstance(m, dict) and isinstance(m.get("content"), str))
    return [t for t in out if t.strip()]


def load_texts(source: str, split: str | None = None) -> list[str]:
    """The texts of one source; a source with no text at all is a DataError naming it."""
    if Path(source).suffix.lower() in TEXT_SUFFIXES:
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
        texts = [line for line in decode_utf8(source, raw).splitlines() if line.strip()]
    else:
        texts = [t for _ref, row in load_table(source, split) for t in _row_texts(row)]
    if not texts:
        raise DataError(f"{source}: no text to train a tokenizer on (expected rows with string fields such as "
                        "prompt/response or messages, or a .txt file with non-empty lines)")
    return texts
