"""Data loading: HelpSteer2 rows, preference pairs, prompts and SFT conversations.

All loaders take the same sources (local .jsonl/.json/.parquet, save_to_disk directories,
hub ids) and raise DataError naming the file and row on any schema problem.
"""
from align.data.sources import RowRef, Table, describe_source, load_rows, load_table, source_kind
from align.data.helpsteer import (
    HelpSteerRow, consecutive_groups, flatten_messages, group_by_prompt, load_helpsteer,
    parse_helpsteer_prompt,
)
from align.data.pairs import PreferencePair, load_preference_pairs, pairs_from_ratings, spread_pairs
from align.data.prompts import load_prompts
from align.data.conversations import check_messages, load_conversations

__all__ = [
    "RowRef", "Table", "describe_source", "load_rows", "load_table", "source_kind",
    "HelpSteerRow", "consecutive_groups", "flatten_messages", "group_by_prompt",
    "load_helpsteer", "parse_helpsteer_prompt",
    "PreferencePair", "load_preference_pairs", "pairs_from_ratings", "spread_pairs",
    "load_prompts", "load_conversations", "check_messages",
]
