"""Small file helpers: nothing is ever half-written over a previous result."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it (atomic on POSIX)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """`atomic_write_text` for bytes (e.g. a PNG rendered in memory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_user_text(path: str | Path) -> str:
    """A file a user gave, as UTF-8 text; unreadable or non-UTF-8 is a DataError naming the file and line."""
    from align.errors import DataError

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return decode_utf8(path, raw)


def decode_utf8(path: str | Path, raw: bytes, lineno: int | None = None) -> str:
    """`raw` (a whole file, or line `lineno` of one) as text; not UTF-8 is a DataError naming the line and byte."""
    from align.errors import DataError

    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lineno if lineno is not None else raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path} line {line}: not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r}); "
                        "save the file as UTF-8") from None


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
