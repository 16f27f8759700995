"""Failure handling: a non-finite loss stops the stage, names the step, keeps the last good checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from align.errors import TrainingError
from align.recipe import load_recipe
from align.runner import Runner
from align.trainers.sft import SFTTrainer
from tests.helpers import sft_stage, world_stage, write_recipe


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path, monkeypatch):
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run",
                        [world_stage(), sft_stage(max_steps=8, save_every=2, batch_size=4)])
    original = SFTTrainer.compute_loss

    def nan_at_step_5(self, model, batch):
        loss, metrics = original(self, model, batch)
        return (loss * float("nan") if self.global_step == 4 else loss), metrics

    monkeypatch.setattr(SFTTrainer, "compute_loss", nan_at_step_5)
    with pytest.raises(TrainingError) as info:
        Runner(load_recipe(path)).run()
    msg = str(info.value)
    assert "non-finite loss" in msg and "optimizer step 5" in msg and "step-00000004" in msg
    ckpt = tmp_path / "run" / ".work" / "sft" / "checkpoints" / "step-00000004" / "model.safetensors"
    assert ckpt.is_file()
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(str(ckpt)).values())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"][1]["status"] == "failed" and "step 5" in manifest["stages"][1]["error"]
    assert not (tmp_path / "run" / "sft").exists()

    monkeypatch.setattr(SFTTrainer, "compute_loss", original)
    Runner(load_recipe(path)).run()  # the fixed run resumes from the good checkpoint and finishes
    assert json.loads((tmp_path / "run" / "sft" / "metrics.json").read_text())["train/steps"] == 8
