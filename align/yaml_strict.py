"""`yaml.safe_load` that refuses duplicate mapping keys.

PyYAML keeps the last of two equal keys without a word, so a second `train:` block silently
replaces the first. The YAML spec says keys must be unique; a recipe with a duplicate is an
error naming both lines.
"""
from __future__ import annotations

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys it brings may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: let the base constructor report it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def safe_load_unique(text: str):
    """Parse YAML like `yaml.safe_load`; a repeated key in any mapping raises a `yaml.YAMLError`."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(exc: yaml.YAMLError) -> str:
    """'line L, column C: what' for a parse error (PyYAML's own text names a '<unicode string>')."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    what = f"{context}, {problem}" if context else problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what
