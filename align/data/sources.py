"""Where rows come from: local files, `save_to_disk` directories or the Hugging Face hub.

Why one entry point: every loader (HelpSteer2 rows, preference pairs, prompts, SFT
conversations) accepts the same kinds of source, and every schema error must name the file
and the row, so rows travel together with a `RowRef` that formats that prefix.

How a source string is read (first match wins):
1. a path ending in .jsonl / .json / .parquet: a local file, which must exist;
2. an existing directory: written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`;
3. `owner/name`: a hub dataset id, loaded with `datasets.load_dataset` (needs network);
4. anything else: DataError.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

from align.errors import DataError
from align.io_utils import decode_utf8

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
DEFAULT_SPLIT = "train"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class RowRef:
    """Names one row in error messages: `data/train.jsonl row 17`.

    `row` is 1-based in the order the source stores rows (before any split filter), so it
    matches what a user sees in the file. For JSONL, `line` is the physical line; it is
    shown only when it differs from the row number (blank lines skipped).
    """

    source: str
    row: int
    line: int | None = None

    def __str__(self) -> str:
        text = f"{self.source} row {self.row}"
        if self.line is not None and self.line != self.row:
            text += f" (line {self.line})"
        return text

    def error(self, message: str) -> DataError:
        """`DataError("<file> row N: <message>")`."""
        return DataError(f"{self}: {message}")

    def field_error(self, name: str, expected: str, got: Any) -> DataError:
        """`<file> row 17: field 'helpfulness' must be an integer 0..4, got 5.5`."""
        return self.error(f"field '{name}' must be {expected}, got {_show(got)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Table:
    """Rows of one source with their `RowRef`s (kept aligned after filtering)."""

    name: str
    rows: list[dict] = field(default_factory=list)
    refs: list[RowRef] = field(default_factory=list)

    def __iter__(self):
        return iter(zip(self.refs, self.rows))

    def __len__(self) -> int:
        return len(self.rows)


def source_kind(source: str) -> str:
    """'file', 'dir' or 'hub' (see the module docstring); DataError otherwise."""
    source = os.fspath(source)
    if source.lower().endswith(FILE_SUFFIXES):
        if not os.path.isfile(source):
            raise DataError(f"file not found: {source}")
        return "file"
    if os.path.isdir(source):
        return "dir"
    if os.path.exists(source):
        raise DataError(
            f"{source}: unsupported file type (expected {', '.join(FILE_SUFFIXES)}, "
            "a save_to_disk directory or a hub id owner/name)"
        )
    if _HUB_ID.match(source):
        return "hub"
    raise DataError(
        f"data source not found: {source} (expected an existing "
        f"{'/'.join(FILE_SUFFIXES)} file, a save_to_disk directory or a hub id owner/name)"
    )


def describe_source(source: str, split: str | None = None, data_dir: str | None = None) -> str:
    """One line for logs and run records, e.g. `hub dataset nvidia/HelpSteer2 [preference] split train`."""
    try:
        kind = source_kind(source)
    except DataError as exc:
        return f"invalid source {source!r}: {exc}"
    label = {"file": "file", "dir": "datasets directory", "hub": "hub dataset"}[kind]
    text = f"{label} {source}"
    if data_dir:
        text += f" [{data_dir}]"
    if split:
        text += f" split {split}"
    return text


def load_rows(
    source: str,
    split: str | None = None,
    data_dir: str | None = None,
    *,
    split_column: str | None = None,
) -> list[dict]:
    """Rows of `source` as plain dicts (see `load_table`)."""
    return load_table(source, split, data_dir, split_column=split_column).rows


def load_table(
    source: str,
    split: str | None = None,
    data_dir: str | None = None,
    *,
    split_column: str | None = None,
) -> Table:
    """Rows plus RowRefs.

    `split` picks a split of a DatasetDict directory or hub dataset (default "train"); a
    single file or a plain Dataset directory *is* one split, so `split` does not select
    anything there. With `split_column` (e.g. "split", as in the HelpSteer2-Preference
    file), rows that carry that column are filtered by `split` instead; a dataset whose
    splits lack `split` then falls back to its "train" split and filters that.
    """
    source = os.fspath(source)
    kind = source_kind(source)
    if kind == "file":
        table = _read_file(source)
    elif kind == "dir":
        table = _read_dir(source, split, split_column)
    else:
        table = _read_hub(source, split, data_dir, split_column)
    if split and split_column and table.rows and split_column in table.rows[0]:
        keep = [i for i, row in enumerate(table.rows) if row.get(split_column) == split]
        if not keep:
            found = sorted({str(r.get(split_column)) for r in table.rows})
            raise DataError(
                f"{table.name}: no rows with {split_column}={split!r} (found: {', '.join(found)})"
            )
        table = Table(table.name, [table.rows[i] for i in keep], [table.refs[i] for i in keep])
    return table


def _table(name: str, rows: list, lines: list[int] | None = None) -> Table:
    refs = []
    for i, row in enumerate(rows):
        ref = RowRef(name, i + 1, lines[i] if lines else None)
        if not isinstance(row, dict):
            raise ref.error(f"expected an object with named fields, got {type(row).__name__}")
        refs.append(ref)
    return Table(name, list(rows), refs)


def _read_file(path: str) -> Table:
    """One data file as a Table; an unreadable, non-UTF-8 or malformed file is a DataError naming it."""
    try:
        return _parse_file(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _parse_file(path: str) -> Table:
    lower = path.lower()
    if lower.endswith(".jsonl"):
        rows, lines = [], []
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = decode_utf8(path, raw, lineno)
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path} line {lineno}: invalid JSON: {exc.msg}") from None
                lines.append(lineno)
        return _table(path, rows, lines)
    if lower.endswith(".json"):
        with open(path, "rb") as fh:
            text = decode_utf8(path, fh.read())
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects or {{\"data\": [...]}}")
        return _table(path, data)
    try:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: cannot read parquet file: {exc}") from None
    return _table(path, rows)


def _pick_split(name: str, dsdict: Any, split: str | None, split_column: str | None):
    wanted = split or DEFAULT_SPLIT
    available = list(dsdict.keys())
    if wanted in dsdict:
        return wanted
    # HelpSteer2-Preference style: one stored split holding a `split` column.
    fallback = DEFAULT_SPLIT if DEFAULT_SPLIT in dsdict else (available[0] if len(available) == 1 else None)
    if split_column and fallback and split_column in dsdict[fallback].column_names:
        return fallback
    raise DataError(f"{name}: no split {wanted!r} (available: {', '.join(available)})")


def _read_dir(path: str, split: str | None, split_column: str | None) -> Table:
    try:
        import datasets

        loaded = datasets.load_from_disk(path)
    except Exception as exc:
        raise DataError(f"{path}: not a datasets save_to_disk directory: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        name = _pick_split(path, loaded, split, split_column)
        return _table(f"{path}[{name}]", loaded[name].to_list())
    return _table(path, loaded.to_list())


def _read_hub(source: str, split: str | None, data_dir: str | None, split_column: str | None) -> Table:
    where = source + (f" (data_dir={data_dir})" if data_dir else "")
    try:
        import datasets

        loaded = datasets.load_dataset(source, data_dir=data_dir)
    except Exception as exc:
        raise DataError(
            f"cannot load hub dataset {where}: {type(exc).__name__}: {exc}. "
            "This machine may be offline: use a local .jsonl/.json/.parquet file or a "
            "save_to_disk directory with the same columns."
        ) from None
    name = _pick_split(where, loaded, split, split_column)
    return _table(f"{source}[{name}]", loaded[name].to_list())


# ---- field checks shared by the loaders -------------------------------------------------

def require_columns(ref: RowRef, row: dict, names) -> None:
    """DataError naming the first missing column and the columns the row has."""
    for name in names:
        if name not in row:
            have = ", ".join(sorted(map(str, row))) or "none"
            raise ref.error(f"missing column '{name}' (columns: {have})")


def text_field(ref: RowRef, row: dict, name: str) -> str:
    """A non-empty (not all-whitespace) string; returned unchanged."""
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ref.field_error(name, "a non-empty string", value)
    return value


def int_field(ref: RowRef, row: dict, name: str, low: int, high: int) -> int:
    """An integer in low..high; 3.0 is accepted as 3, bools and 5.5 are not."""
    value = row.get(name)
    ok = False
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, Integral):
        value, ok = int(value), True
    elif isinstance(value, Real) and math.isfinite(value) and float(value).is_integer():
        value, ok = int(value), True
    if not ok or not low <= value <= high:
        raise ref.field_error(name, f"an integer {low}..{high}", row.get(name))
    return value


def number_field(ref: RowRef, row: dict, name: str, low: float = 0.0) -> float:
    """A finite real number >= low (bools rejected)."""
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < low:
        raise ref.field_error(name, f"a finite number >= {low:g}", value)
    return float(value)
