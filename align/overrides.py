"""`--set KEY=VALUE`: override any recipe field by its dotted path, stages addressed by name.

    --set seed=3
    --set stages.sft.train.lr=3e-4        # the stage named 'sft'
    --set stages.sft.model.tiny.layers=2
Values are parsed as YAML, so numbers, booleans, lists and null keep their types.
"""
from __future__ import annotations

from typing import Any

import yaml

from align.errors import ConfigError
from align.yaml_strict import safe_load_unique


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError([f"--set {text!r}: expected KEY=VALUE (e.g. stages.sft.train.lr=1e-4)"])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError([f"--set {text!r}: empty key or empty path component"])
    try:
        value = safe_load_unique(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([f"--set {text!r}: value is not valid YAML ({exc})"]) from exc
    return parts, value


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """Return a copy of the raw recipe with every override applied (errors collected)."""
    import copy

    data = copy.deepcopy(recipe)
    problems: list[str] = []
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = _stage_by_name(node, part, text, problems)
                if node is None:
                    break
                continue
            if not isinstance(node, dict):
                problems.append(f"--set {text!r}: '{'.'.join(parts[:i])}' is not a mapping")
                node = None
                break
            node = node.setdefault(part, {})
        if node is None:
            continue
        last = parts[-1]
        if isinstance(node, list):
            problems.append(f"--set {text!r}: cannot replace a whole stage; set its fields")
        elif isinstance(node, dict):
            node[last] = value
        else:
            problems.append(f"--set {text!r}: '{'.'.join(parts[:-1])}' is not a mapping")
    if problems:
        raise ConfigError(problems, source="--set")
    return data


def _stage_by_name(stages: list, key: str, text: str, problems: list[str]) -> dict | None:
    for stage in stages:
        if isinstance(stage, dict) and stage.get("name") == key:
            return stage
    if key.isdigit() and int(key) < len(stages):
        return stages[int(key)]
    names = [s.get("name") for s in stages if isinstance(s, dict)]
    problems.append(f"--set {text!r}: no stage named {key!r} (stages: {', '.join(map(str, names))})")
    return None
