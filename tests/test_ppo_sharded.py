"""PPO under DeepSpeed ZeRO-3 on 2 CPU processes (gloo) matches PPO under DDP.

Opt-in like tests/test_deepspeed.py: skipped unless the `deepspeed` extra is installed. The
launched processes partition every ZeRO-3 parameter (tests/launch_hooks), so a rollout that
sampled from partitioned weights, or a save of them, would show up here.

The same recipe (tests/test_distributed.py `_ppo_recipe`: random tiny policy, near-greedy
rollouts, the oracle reward, responses of equal length) runs under DDP and under ZeRO-3: the
responses, rewards, KL and losses must agree, and so must the saved policies. The engines differ
in how they get the log-probs (DDP: the chunked hidden-state path; ZeRO-3: the model's own
logits, align.trainers.actor_critic) and in how gradients are reduced, so the weights agree to
float rounding amplified by Adam's first steps, not bitwise.

FSDP is not tested: accelerate (and torch's FSDP) run it on GPUs only.
"""
from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from align.config.model_spec import ModelSpec
from align.models import load_model
from align.recipe import load_recipe
from align.runner import Runner
from tests.helpers import TINY
from tests.test_distributed import (
    _free_port,
    _ppo_recipe,
    run_stopped_at,
    use_launch_hooks,
)

pytest.importorskip("deepspeed")

KEYS = ("ppo/reward_first", "ppo/reward_final", "ppo/kl_final", "ppo/kl_coef_final", "ppo/policy_loss_final",
        "ppo/value_loss_final", "ppo/entropy_final")


@pytest.fixture
def launched(monkeypatch):
    use_launch_hooks(monkeypatch)
    monkeypatch.setenv("ALIGN_TEST_ZERO3_PARTITION_ALL", "1")
    return monkeypatch


def _ddp() -> dict:
    return {"num_processes": 2, "launcher": "torchrun", "cpu": True, "main_process_port": _free_port()}


def _zero3() -> dict:
    return {"strategy": "deepspeed", "zero_stage": 3, "num_processes": 2, "cpu": True,
            "main_process_port": _free_port()}


def _recipe(tmp_path, name, dist, **ppo):
    path = _ppo_recipe(tmp_path, name, dist)
    raw = yaml.safe_load(path.read_text())
    raw["stages"][1]["train"].update(ppo.pop("train", {}))
    raw["stages"][1].update(ppo)
    path.write_text(yaml.safe_dump(raw))
    return path


def _weights(run, stage="ppo"):
    return load_file(str(run / stage / "model" / "model.safetensors"))


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _moved(run, weights) -> float:
    """How far training moved the policy from its (seeded, random tiny) start."""
    init, _ = load_model(ModelSpec(tiny=TINY, tokenizer=str(run / "world" / "tokenizer")), seed=0)
    start = init.state_dict()
    return max((weights[k] - start[k]).abs().max().item() for k in weights)


@pytest.mark.parametrize("critic", ["shared", pytest.param("separate", marks=pytest.mark.slow)])
def test_zero3_ppo_matches_ddp(tmp_path, launched, critic):
    for name, dist in (("ddp", _ddp()), ("zero3", _zero3())):
        Runner(load_recipe(_recipe(tmp_path, name, dist, critic=critic))).run()
    log = (tmp_path / "zero3" / "ppo" / "stage.log").read_text()
    assert "engine: DEEPSPEED (ZeRO-3) on 2 process(es), cpu" in log
    m = {n: json.loads((tmp_path / n / "ppo" / "metrics.json").read_text()) for n in ("ddp", "zero3")}
    for run in m.values():  # the precondition of the comparison: equal response lengths, 2 steps
        assert run["ppo/steps"] == 2 and run["ppo/response_length_final"] == 4, run
    for key in KEYS:
        assert m["zero3"][key] == pytest.approx(m["ddp"][key], rel=1e-4, abs=1e-5), key
    ddp, zero3 = _weights(tmp_path / "ddp"), _weights(tmp_path / "zero3")
    worst = _max_diff(ddp, zero3)
    assert _moved(tmp_path / "ddp", ddp) > 1e-4  # PPO really moved the policy
    print(f"ppo critic={critic}: ZeRO-3 vs DDP max weight diff {worst:.3g}")
    assert worst < 1e-5, f"ppo ({critic} critic): ZeRO-3 weights differ from DDP by {worst}"


@pytest.mark.slow
def test_zero3_grpo_matches_ddp(tmp_path, launched):
    """A critic-free subclass (GRPO: no value head in the sharded module). Sampled rollouts (top_p 1), so a
    group's two responses differ and give advantages; both engines draw them with the same seeds."""
    grpo = {"trainer": "align.trainers.grpo:GRPOTrainer", "trainer_options": {"group_size": 2}, "top_p": 1.0}
    for name, dist in (("ddp", _ddp()), ("zero3", _zero3())):
        Runner(load_recipe(_recipe(tmp_path, name, dist, **grpo))).run()
    m = {n: json.loads((tmp_path / n / "ppo" / "metrics.json").read_text()) for n in ("ddp", "zero3")}
    for key in ("ppo/reward_first", "ppo/reward_final", "ppo/policy_loss_final", "ppo/kl_loss_final"):
        assert m["zero3"][key] == pytest.approx(m["ddp"][key], rel=1e-4, abs=1e-5), key
    ddp = _weights(tmp_path / "ddp")
    assert _moved(tmp_path / "ddp", ddp) > 1e-4  # the groups' advantages moved the policy
    worst = _max_diff(ddp, _weights(tmp_path / "zero3"))
    print(f"grpo: ZeRO-3 vs DDP max weight diff {worst:.3g}")
    assert worst < 1e-5, f"grpo: ZeRO-3 weights differ from DDP by {worst}"


@pytest.mark.slow
def test_zero3_ppo_resume_is_exact(tmp_path, launched):
    """Sampled rollouts, minibatch < rollout_batch, a separate critic: stopped after the step-2 sharded
    checkpoint, resumed, and bitwise equal to an uninterrupted ZeRO-3 run."""
    def recipe(name):
        return _recipe(tmp_path, name, _zero3(), steps=4, minibatch=2, top_p=1.0, critic="separate",
                       train={"save_every": 2})

    Runner(load_recipe(recipe("straight"))).run()
    path = recipe("stopped")
    ckpts = tmp_path / "stopped" / ".work" / "ppo" / "checkpoints"
    assert run_stopped_at(launched, path, 2, ckpts) == ["step-00000002"]
    shards = {p.name for p in (ckpts / "step-00000002" / "pytorch_model").iterdir()}
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= shards
    Runner(load_recipe(path)).run()
    assert "(step 2)" in (tmp_path / "stopped" / "ppo" / "stage.log").read_text()  # resumed, not restarted
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "stopped")
    assert _max_diff(a, b) == 0.0
    ma = json.loads((tmp_path / "straight" / "ppo" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "stopped" / "ppo" / "metrics.json").read_text())
    for key in ("ppo/reward_final", "ppo/value_loss_final", "ppo/kl_coef_final"):
        assert ma[key] == mb[key], key
