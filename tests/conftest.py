"""Shared fixtures: a small synthetic world generated once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory):
    """A 200-prompt world (data files + tokenizer) shared by the tests that only read it."""
    from align.world.generator import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, prompts=200, seed=0, test_prompts=20)
    return out
