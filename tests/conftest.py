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


def pytest_collection_modifyitems(config, items):
    """`real` tests (a pretrained model on the CPU, minutes) run only under `make test-real`."""
    if os.environ.get("STEERALIGN_REAL") == "1":
        return
    skip = pytest.mark.skip(reason="needs STEERALIGN_REAL=1 (make test-real)")
    for item in items:
        if "real" in item.keywords:
            item.add_marker(skip)
