"""PPO resumes exactly: prompt order, generator, KL coefficient, policy, value head and optimizer."""
from __future__ import annotations

import pytest
from safetensors.torch import load_file

from align.recipe import load_recipe
from align.runner import Runner
from align.trainers import ppo as ppo_trainer
from tests.helpers import sft_stage, world_stage, write_recipe


def _recipe(tmp_path, name):
    ppo = {"name": "ppo", "kind": "ppo", "model": {"from": "sft"}, "prompts": "world.prompts_train",
           "reward": {"oracle": "goodness"}, "steps": 6, "rollout_batch": 4, "minibatch": 2, "max_new_tokens": 8,
           "kl_target": 1.0, "train": {"lr": 1e-3, "save_every": 2, "log_every": 1}, "eval_samples": 0}
    return write_recipe(tmp_path / f"{name}.yaml", tmp_path / name, [world_stage(), sft_stage(max_steps=4), ppo])


def test_ppo_resume_is_exact(tmp_path, monkeypatch):
    Runner(load_recipe(_recipe(tmp_path, "straight"))).run()
    path = _recipe(tmp_path, "interrupted")
    original = ppo_trainer.PPOTrainer.rollout

    def stop_at_step_5(self, prompts, seed):
        if self.global_step == 4:
            raise KeyboardInterrupt
        return original(self, prompts, seed)

    monkeypatch.setattr(ppo_trainer.PPOTrainer, "rollout", stop_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        Runner(load_recipe(path)).run()
    ckpts = sorted(p.name for p in (tmp_path / "interrupted" / ".work" / "ppo" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000004"]
    monkeypatch.setattr(ppo_trainer.PPOTrainer, "rollout", original)
    Runner(load_recipe(path)).run()
    a = load_file(str(tmp_path / "straight" / "ppo" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "interrupted" / "ppo" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    start = load_file(str(tmp_path / "straight" / "sft" / "model" / "model.safetensors"))
    assert any(not (a[k] == start[k]).all() for k in a)  # PPO really moved the policy
