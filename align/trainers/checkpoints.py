"""Atomic, verifiable training checkpoints.

A checkpoint is a directory checkpoints/step-NNNNNNNN/ holding model.safetensors,
optimizer.pt, scheduler.pt and trainer_state.json. It is written under a temporary name
and renamed into place, so a checkpoint that exists is complete; one that fails to load
anyway (disk damage, a foreign file) is skipped with a warning and the previous one used.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger("align")

STEP_DIR = re.compile(r"^step-(\d{8})$")


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(root: Path, step: int, model, optimizer, scheduler, state: dict, keep: int) -> Path:
    import torch
    from safetensors.torch import save_model

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    _commit(tmp, final, state, keep)
    return final


def _commit(tmp: Path, final: Path, state: dict, keep: int) -> None:
    """Write the trainer state last, rename the checkpoint into place, prune old ones."""
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(final.parent)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def load_latest_checkpoint(root: Path, model, optimizer, scheduler) -> dict | None:
    """Load the newest loadable checkpoint into the objects; return its trainer state or None."""
    import torch
    from safetensors.torch import load_model

    for ckpt in list_checkpoints(root):
        try:
            state = json.loads((ckpt / "trainer_state.json").read_text())
            load_model(model, str(ckpt / "model.safetensors"))
            optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
            scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", map_location="cpu", weights_only=True))
            log.info("resumed from %s (step %d)", ckpt, state["global_step"])
            return state
        except Exception as exc:  # a damaged checkpoint must not stop the resume
            log.warning("checkpoint %s is unreadable (%s): skipping it", ckpt, exc)
    return None


def save_sharded_checkpoint(accelerator, root: Path, step: int, state: dict, keep: int) -> None:
    """FSDP / DeepSpeed: every rank writes its shard through `accelerator.save_state`; rank 0 commits."""
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _commit(tmp, final, state, keep)
    accelerator.wait_for_everyone()


def load_latest_sharded(accelerator, root: Path) -> dict | None:
    for ckpt in list_checkpoints(root):
        try:
            state = json.loads((ckpt / "trainer_state.json").read_text())
            accelerator.load_state(str(ckpt))
            log.info("resumed from %s (step %d)", ckpt, state["global_step"])
            return state
        except Exception as exc:
            log.warning("checkpoint %s is unreadable (%s): skipping it", ckpt, exc)
    return None
