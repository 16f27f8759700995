"""The distributed path: a stage launched on 2 CPU processes (torchrun, gloo) matches 1 process.

DDP averages gradients over processes, and SFT's loss is a token mean per micro-batch,
so the two agree exactly when every micro-batch carries the same number of label tokens.
The data here is built that way (and the test checks it), so any difference comes from
the distributed machinery: sharding of the data, gradient averaging, saving from rank 0.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from transformers import AutoTokenizer

from align.chat import tokenize_conversation
from align.config.base import DistributedConfig
from align.config.model_spec import ModelSpec
from align.distributed import check_engine
from align.errors import AlignError, TrainingError
from align.launch import launch_command
from align.models import load_model, save_model
from align.recipe import load_recipe
from align.runner import Runner
from tests.helpers import TINY, pipeline_stages, sft_stage, world_stage, write_recipe


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def use_launch_hooks(monkeypatch) -> None:
    """Put tests/launch_hooks on the launched processes' PYTHONPATH (ALIGN_TEST_* variables reach them)."""
    hooks = Path(__file__).parent / "launch_hooks"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))


def run_stopped_at(monkeypatch, recipe_path: Path, step: int, checkpoints: Path) -> list[str]:
    """Run the recipe with its launched processes stopped at `step`; the checkpoint names left behind."""
    monkeypatch.setenv("ALIGN_TEST_STOP_AT_STEP", str(step))
    with pytest.raises(AlignError, match="exited with code"):
        Runner(load_recipe(recipe_path)).run()
    monkeypatch.delenv("ALIGN_TEST_STOP_AT_STEP")
    return sorted(p.name for p in checkpoints.iterdir())


def _equal_length_data(path, tok):
    rows = []
    for a in range(1, 10):
        for b in range(1, 10):
            rows.append({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                      {"role": "assistant", "content": f"The answer is {(a + b) % 10}."}]})
    lengths = {len(tokenize_conversation(tok, r["messages"], max_length=128).input_ids) for r in rows}
    labels = {sum(x != -100 for x in tokenize_conversation(tok, r["messages"], max_length=128).labels) for r in rows}
    assert len(lengths) == 1 and len(labels) == 1, "test data must have equal token counts"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(tmp_path, name, data, tok_dir, batch_size, distributed=None):
    sft = {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": str(tok_dir)},
           "data": str(data), "train": {"max_steps": 5, "lr": 1e-3, "batch_size": batch_size, "max_length": 128,
                                        "log_every": 1}}
    if distributed:
        sft["distributed"] = distributed
    return write_recipe(tmp_path / f"{name}.yaml", tmp_path / name, [sft])


def test_two_processes_match_one(tmp_path, world_dir):
    tok_dir = world_dir / "tokenizer"
    data = _equal_length_data(tmp_path / "data.jsonl", AutoTokenizer.from_pretrained(tok_dir))
    Runner(load_recipe(_recipe(tmp_path, "one", data, tok_dir, batch_size=8))).run()
    two = _recipe(tmp_path, "two", data, tok_dir, batch_size=4,
                  distributed={"num_processes": 2, "launcher": "torchrun", "cpu": True,
                               "main_process_port": _free_port()})
    Runner(load_recipe(two)).run()
    a = load_file(str(tmp_path / "one" / "sft" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "sft" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    init, _ = load_model(ModelSpec(tiny=TINY, tokenizer=str(tok_dir)), seed=0)
    moved = (init.state_dict()["model.embed_tokens.weight"] - a["model.embed_tokens.weight"]).abs().max().item()
    assert moved > 1e-4  # training really changed the weights
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, f"2-process weights differ from 1-process by {worst}"
    m1 = json.loads((tmp_path / "one" / "sft" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "sft" / "metrics.json").read_text())
    assert m1["train/steps"] == m2["train/steps"] == 5
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["stages"][0]["status"] == "done"


def test_every_distributable_stage_runs_on_two_processes(tmp_path):
    """reward_model, steerlm_sft, dpo, steerlm2 and ppo under a recipe-wide `distributed` default (2 gloo processes).

    steerlm2: each process samples half the items; the gathered samples file must be whole, and
    training on it must give the weights one process gets from the same file (batch 2 x 1 = 1 x 2).
    """
    from align.stages import STAGE_KINDS

    train = {"max_steps": 3, "lr": 1e-3, "batch_size": 4, "max_length": 128, "save_every": 0}
    stages = pipeline_stages(train)
    stages[-1]["target_distribution"] = [{"attributes": {"verbosity": 1}}, {"attributes": {"verbosity": 3}}]
    stages.append(
        {"name": "ppo", "kind": "ppo", "model": {"from": "sft"}, "prompts": "world.prompts_train",
         "reward": {"oracle": "goodness"}, "steps": 2, "rollout_batch": 4, "minibatch": 2, "max_new_tokens": 4,
         "kl_target": 1.0, "eval_samples": 0, "train": {"lr": 1e-3, "save_every": 1, "log_every": 1}})
    assert {s["kind"] for s in stages[1:]} == {k for k, c in STAGE_KINDS.items() if c.distributable}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages,
                                    "distributed": {"num_processes": 2, "launcher": "torchrun", "cpu": True,
                                                    "main_process_port": _free_port()}}))
    recipe = load_recipe(path)
    assert all(s.distributed.world_size == 2 for s in recipe.stages[1:]) and recipe.stages[0].distributed is None
    Runner(recipe).run()
    for name in ("sft", "rm", "steerlm1", "dpo"):
        assert (tmp_path / "run" / name / "model" / "model.safetensors").is_file(), name
        assert json.loads((tmp_path / "run" / name / "metrics.json").read_text())["train/steps"] == 3, name
    _check_steerlm2(tmp_path, recipe)
    ppo = json.loads((tmp_path / "run" / "ppo" / "metrics.json").read_text())
    assert ppo["ppo/steps"] == 2 and (tmp_path / "run" / "ppo" / "model" / "model.safetensors").is_file()
    assert ppo["ppo/kl_coef_final"] != 0.05  # the adaptive controller moved (on the global KL)


def _ppo_recipe(tmp_path, name, distributed=None):
    """PPO from a random tiny model with near-greedy rollouts (top_p 1e-6) and the rule-based oracle reward."""
    ppo = {"name": "ppo", "kind": "ppo", "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer"},
           "prompts": "world.prompts_train", "reward": {"oracle": "goodness"}, "steps": 2, "rollout_batch": 4,
           "minibatch": 4, "ppo_epochs": 2, "max_new_tokens": 4, "top_p": 1e-6, "kl_target": 1.0,
           "eval_samples": 0, "train": {"lr": 1e-3, "save_every": 0, "log_every": 1}}
    if distributed:
        ppo["distributed"] = distributed
    return write_recipe(tmp_path / f"{name}.yaml", tmp_path / name, [world_stage(), ppo])


def test_ppo_two_processes_match_one(tmp_path):
    """2 processes x 2 rollouts = 1 process x 4: same responses (greedy), same global whitening and KL
    controller, one minibatch of the whole rollout batch per optimizer step (DDP averages two
    per-process token means, equal to the global one when all responses have the same length)."""
    Runner(load_recipe(_ppo_recipe(tmp_path, "one"))).run()
    Runner(load_recipe(_ppo_recipe(tmp_path, "two", {"num_processes": 2, "launcher": "torchrun", "cpu": True,
                                                     "main_process_port": _free_port()}))).run()
    m1 = json.loads((tmp_path / "one" / "ppo" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "ppo" / "metrics.json").read_text())
    for m in (m1, m2):  # the precondition of the exact comparison: equal response lengths
        assert m["ppo/response_length_final"] == 4 and m["ppo/eos_fraction_final"] == 0, m
    for key in ("ppo/reward_first", "ppo/reward_final", "ppo/kl_final", "ppo/kl_coef_final", "ppo/policy_loss_final",
                "ppo/value_loss_final"):
        assert m1[key] == pytest.approx(m2[key], rel=1e-4, abs=1e-6), key
    a = load_file(str(tmp_path / "one" / "ppo" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "ppo" / "model" / "model.safetensors"))
    init, _ = load_model(ModelSpec(tiny=TINY, tokenizer=str(tmp_path / "one" / "world" / "tokenizer")), seed=0)
    start = init.state_dict()
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-4  # PPO really moved the policy
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, f"ppo: 2-process weights differ from 1-process by {worst}"


def _check_steerlm2(tmp_path, recipe):
    import shutil

    from align.context import StageContext
    from align.stages import STAGE_KINDS

    out = tmp_path / "run" / "steerlm2"
    assert (out / "model" / "model.safetensors").is_file()
    m = json.loads((out / "metrics.json").read_text())
    for k in (1, 2):
        # 4 groups of 2 over 2 processes x batch 1, one epoch: 2 optimizer steps per iteration
        assert m[f"train/steps/iter{k}"] == 2.0 and f"steerlm2/ess/iter{k}" in m, m
        rows = [json.loads(x) for x in (out / f"iterations/iter{k}/samples.jsonl").read_text().splitlines()]
        assert [r["group"] for r in rows] == [0, 0, 1, 1, 2, 2, 3, 3]  # both shards, in item order
    # one process, batch 2, on the same samples: the same weights as 2 processes x batch 1
    cfgs = {s.name: s for s in recipe.stages}
    cfg = cfgs["steerlm2"]
    one = cfg.model_copy(update={"distributed": None, "iterations": 1,
                                 "train": cfg.train.model_copy(update={"batch_size": 2})})
    work = tmp_path / "one_steerlm2"
    (work / "iterations/iter1").mkdir(parents=True)
    shutil.copy(out / "iterations/iter1/samples.jsonl", work / "iterations/iter1/samples.jsonl")
    ctx = StageContext(name="steerlm2", run_dir=tmp_path / "run", work_dir=work, seed=0, stages=cfgs)
    got = STAGE_KINDS["steerlm2"]().run(one, ctx)
    assert got["train/steps/iter1"] == 2.0
    a = load_file(str(out / "iterations/iter1/model/model.safetensors"))
    b = load_file(str(work / "iterations/iter1/model/model.safetensors"))
    start = load_file(str(tmp_path / "run" / "steerlm1" / "model" / "model.safetensors"))
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-5  # training moved the weights
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, f"steerlm2: 2-process weights differ from 1-process by {worst}"


@pytest.mark.slow
def test_ppo_resume_on_two_processes_is_exact(tmp_path, monkeypatch):
    """Sampled rollouts (rank-dependent seeds), minibatch < rollout_batch: stopped after step 2, resumed, equal."""
    use_launch_hooks(monkeypatch)

    def recipe(name):
        path = _ppo_recipe(tmp_path, name, {"num_processes": 2, "launcher": "torchrun", "cpu": True,
                                            "main_process_port": _free_port()})
        raw = yaml.safe_load(path.read_text())
        raw["stages"][1].update(steps=4, minibatch=2, top_p=1.0)
        raw["stages"][1]["train"]["save_every"] = 2
        path.write_text(yaml.safe_dump(raw))
        return path

    Runner(load_recipe(recipe("straight"))).run()
    path = recipe("stopped")
    ckpts = tmp_path / "stopped" / ".work" / "ppo" / "checkpoints"
    assert run_stopped_at(monkeypatch, path, 2, ckpts) == ["step-00000002"]
    Runner(load_recipe(path)).run()
    assert "(step 2)" in (tmp_path / "stopped" / "ppo" / "stage.log").read_text()  # resumed, not restarted
    a = load_file(str(tmp_path / "straight" / "ppo" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "stopped" / "ppo" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_launch_commands_per_engine(tmp_path):
    def cmd(**kw):
        train = {k: kw.pop(k) for k in ("precision", "grad_accum", "max_grad_norm") if k in kw}
        return launch_command(DistributedConfig(num_processes=2, **kw), tmp_path, "s", **train)

    def flag(c, name):
        return c[c.index(name) + 1]

    ddp_cpu = cmd(cpu=True)
    assert "--cpu" in ddp_cpu and "--multi_gpu" not in ddp_cpu
    # accelerate refuses --cpu with --use_deepspeed: CPU DeepSpeed runs get the DeepSpeed flags alone
    zero3 = cmd(strategy="deepspeed", zero_stage=3, cpu=True, grad_accum=4, max_grad_norm=None)
    assert "--cpu" not in zero3 and "--use_deepspeed" in zero3
    assert flag(zero3, "--zero3_save_16bit_model") == "true"  # get_state_dict gathers the weights
    assert flag(zero3, "--gradient_clipping") == "0.0"  # max_grad_norm null: no clipping (not DeepSpeed's 1.0)
    assert flag(zero3, "--gradient_accumulation_steps") == "4"
    zero2 = cmd(strategy="deepspeed", zero_stage=2, max_grad_norm=0.5)
    assert flag(zero2, "--zero3_save_16bit_model") == "false" and flag(zero2, "--gradient_clipping") == "0.5"
    fsdp = cmd(strategy="fsdp")
    assert flag(fsdp, "--fsdp_cpu_ram_efficient_loading") == "false"  # every rank loads whole weights


def test_engine_mismatch_is_an_error(monkeypatch):
    """A launch for DeepSpeed or FSDP that accelerate turns into plain DDP must not run silently."""
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    check_engine(DistributedType.MULTI_CPU)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    check_engine(DistributedType.DEEPSPEED)
    with pytest.raises(TrainingError, match="launched for deepspeed but accelerate set up"):
        check_engine(DistributedType.MULTI_CPU)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(TrainingError, match="launched for fsdp"):
        check_engine(DistributedType.MULTI_CPU)


def test_preflight_refuses_engines_this_machine_cannot_run(tmp_path, monkeypatch):
    """FSDP without CUDA, DeepSpeed without the package: refused before any stage runs or launches."""
    def recipe(name, dist):
        return load_recipe(write_recipe(tmp_path / f"{name}.yaml", tmp_path / name,
                                        [world_stage(), {**sft_stage(), "distributed": dist}]))

    if not torch.cuda.is_available():
        with pytest.raises(AlignError, match="strategy fsdp needs CUDA GPUs"):
            Runner(recipe("fsdp", {"strategy": "fsdp", "num_processes": 2})).run()
        assert not (tmp_path / "fsdp").exists()  # not even the world stage ran
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "deepspeed" else real_find_spec(n, *a))
    with pytest.raises(AlignError, match=r"steeralign\[deepspeed\]"):
        Runner(recipe("ds", {"strategy": "deepspeed", "num_processes": 2, "cpu": True})).run()


def test_save_model_refuses_partitioned_weights(tmp_path):
    """A ZeRO-3 module saved outside the gathering path would write empty tensors."""
    model = torch.nn.Linear(2, 2)
    model.weight = torch.nn.Parameter(torch.empty(0))
    model.weight.ds_id = 0  # what DeepSpeed marks its partitioned parameters with
    with pytest.raises(AlignError, match="partitioned"):
        save_model(model, None, tmp_path / "m")
