"""The SteerLM attribute label string and where it goes in the chat (SPEC.md section 3).

The label string `helpfulness:4,correctness:4,coherence:4,complexity:2,verbosity:2` is
written at the start of the assistant turn, behind a marker, followed by a newline:

    <generation prompt of any chat template><marker><label string>\\n<response><end of turn>

Putting it *inside* the assistant content (rather than in a template of our own) is what
makes any chat template work: training renders `content = prefix + response` with the
model's own template and masks the prefix; generation appends the same prefix after the
template's generation prompt (`generate(..., prompt_suffix=prefix)`).

The marker defaults to NeMo-Aligner's `<extra_id_2>`. It must survive a tokenizer round
trip unchanged (`check_marker`), which byte-level BPE tokenizers always do.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from align.attributes import ATTRIBUTES, MAX_VALUE, MIN_VALUE

DEFAULT_MARKER = "<extra_id_2>"


def format_label(attributes: Mapping[str, int], order: Sequence[str] = ATTRIBUTES) -> str:
    """`{'helpfulness': 4, ...}` -> 'helpfulness:4,...' in `order`; attributes not given are left out.

    Values are ints in 0..4 (a ValueError otherwise): SPEC.md section 3.
    """
    parts = []
    for name in order:
        if name not in attributes or attributes[name] is None:
            continue
        value = attributes[name]
        if int(value) != value or not MIN_VALUE <= value <= MAX_VALUE:
            raise ValueError(f"attribute {name!r} must be an integer {MIN_VALUE}..{MAX_VALUE}, got {value!r}")
        parts.append(f"{name}:{int(value)}")
    unknown = set(attributes) - set(order)
    if unknown:
        raise ValueError(f"unknown attribute(s) {sorted(unknown)}; known: {', '.join(order)}")
    return ",".join(parts)


def parse_label(label: str) -> dict[str, int]:
    """Inverse of `format_label`: 'helpfulness:4,verbosity:2' -> {'helpfulness': 4, 'verbosity': 2}."""
    out: dict[str, int] = {}
    for part in label.strip().split(","):
        name, sep, value = part.partition(":")
        name = name.strip()
        if not sep or name not in ATTRIBUTES or not value.strip().isdigit():
            raise ValueError(f"bad attribute entry {part!r} in {label!r} (expected name:int, names: "
                             f"{', '.join(ATTRIBUTES)})")
        out[name] = int(value)
        if not MIN_VALUE <= out[name] <= MAX_VALUE:
            raise ValueError(f"attribute {name!r} must be {MIN_VALUE}..{MAX_VALUE}, got {out[name]}")
    return out


def attribute_prefix(attributes: Mapping[str, int], marker: str = DEFAULT_MARKER,
                     order: Sequence[str] = ATTRIBUTES) -> str:
    """The text that starts the assistant turn: marker + label string + newline."""
    return f"{marker}{format_label(attributes, order)}\n"


def check_marker(tokenizer, marker: str) -> None:
    """Raise ValueError unless `marker` decodes back to itself and stays a separate token span.

    'Separate' means: tokenizing `marker + 'helpfulness'` starts with the tokens of the
    marker alone, so the label's first characters never merge into the marker.
    """
    ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
    if tokenizer.decode(ids, skip_special_tokens=False) != marker:
        raise ValueError(f"tokenizer does not keep the marker {marker!r} intact "
                         f"(round trip gives {tokenizer.decode(ids)!r}); choose another marker")
    joined = tokenizer(marker + "helpfulness", add_special_tokens=False)["input_ids"]
    if joined[: len(ids)] != ids:
        raise ValueError(f"marker {marker!r} merges with the label text under this tokenizer; "
                         "choose a marker ending in a separator such as '>' or ':'")


def clip_round(values, low: int = MIN_VALUE, high: int = MAX_VALUE) -> list[int]:
    """Reward-model predictions -> integer labels: clipped to 0..4 and rounded (SPEC.md section 3)."""
    return [int(round(min(max(float(v), low), high))) for v in values]
