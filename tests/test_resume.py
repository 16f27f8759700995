"""An interrupted SFT stage resumes from its last checkpoint and ends with identical weights."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from align.recipe import load_recipe
from align.runner import Runner
from align.trainers import base as base_trainer
from tests.helpers import sft_stage, world_stage, write_recipe


def _weights(run):
    return load_file(str(run / "sft" / "model" / "model.safetensors"))


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), f"{k} differs"


def _recipe(tmp_path, name, **train):
    stages = [world_stage(), sft_stage(**train)]
    return write_recipe(tmp_path / f"{name}.yaml", tmp_path / name, stages)


def test_resume_after_interrupt_is_exact(tmp_path, monkeypatch):
    train = dict(max_steps=20, save_every=5, batch_size=4)
    Runner(load_recipe(_recipe(tmp_path, "straight", **train))).run()

    path = _recipe(tmp_path, "interrupted", **train)
    original = base_trainer.BaseTrainer._check_finite

    def interrupt_at_step_12(self, loss):
        if self.global_step == 12:
            raise KeyboardInterrupt
        return original(self, loss)

    monkeypatch.setattr(base_trainer.BaseTrainer, "_check_finite", interrupt_at_step_12)
    with pytest.raises(KeyboardInterrupt):
        Runner(load_recipe(path)).run()
    run = tmp_path / "interrupted"
    assert not (run / "sft").exists()
    ckpts = sorted(p.name for p in (run / ".work" / "sft" / "checkpoints").iterdir())
    assert ckpts == ["step-00000005", "step-00000010"]
    monkeypatch.setattr(base_trainer.BaseTrainer, "_check_finite", original)

    runner = Runner(load_recipe(path))
    assert [a for _, a in runner.plan()] == ["skip (up to date)", "resume"]
    runner.run()
    _assert_same(_weights(tmp_path / "straight"), _weights(run))


def test_corrupt_checkpoint_is_skipped(tmp_path, monkeypatch, caplog):
    train = dict(max_steps=12, save_every=4, batch_size=4)
    Runner(load_recipe(_recipe(tmp_path, "straight", **train))).run()
    path = _recipe(tmp_path, "damaged", **train)
    original = base_trainer.BaseTrainer._check_finite

    def stop_at_9(self, loss):
        if self.global_step == 9:
            raise KeyboardInterrupt
        return original(self, loss)

    monkeypatch.setattr(base_trainer.BaseTrainer, "_check_finite", stop_at_9)
    with pytest.raises(KeyboardInterrupt):
        Runner(load_recipe(path)).run()
    monkeypatch.setattr(base_trainer.BaseTrainer, "_check_finite", original)
    newest = tmp_path / "damaged" / ".work" / "sft" / "checkpoints" / "step-00000008"
    (newest / "model.safetensors").write_bytes(b"not a safetensors file")
    Runner(load_recipe(path)).run()
    assert "unreadable" in caplog.text and "step-00000008" in caplog.text
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "damaged"))


def test_sigkill_mid_stage_then_resume(tmp_path):
    train = dict(max_steps=150, save_every=25, batch_size=4)
    path = _recipe(tmp_path, "killed", **train)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "align.cli", "run", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = tmp_path / "killed" / ".work" / "sft" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt_dir.is_dir() and any(p.name.startswith("step-") for p in ckpt_dir.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "sft" / "stage.json").exists()  # killed mid-stage
    assert subprocess.run([sys.executable, "-m", "align.cli", "run", str(path)], env=env,
                          capture_output=True).returncode == 0
    Runner(load_recipe(_recipe(tmp_path, "straight", **train))).run()
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "killed"))
