"""Bad recipes: every problem is reported with its YAML path, together, with exit code 2."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from align.cli import main
from align.errors import ConfigError
from align.recipe import load_recipe
from tests.helpers import sft_stage, world_stage, write_recipe


def _problems(tmp_path, stages, **top) -> list[str]:
    data = {"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages, **top}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    return info.value.problems


def _one(problems: list[str], *fragments: str) -> str:
    hits = [p for p in problems if all(f in p for f in fragments)]
    assert hits, f"no problem containing {fragments} in {problems}"
    return hits[0]


def test_valid_recipe_loads(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft_stage()])
    recipe = load_recipe(path)
    assert [s.name for s in recipe.stages] == ["world", "sft"]
    assert recipe.depends_on["sft"] == ["world"]


def test_unknown_keys_everywhere(tmp_path):
    sft = sft_stage()
    sft["trian"] = {}
    sft["train"]["lrr"] = 1
    problems = _problems(tmp_path, [world_stage(), sft], extra_top=1)
    _one(problems, "extra_top", "unknown key")
    _one(problems, "stages[1] (sft).trian", "unknown key")
    _one(problems, "stages[1] (sft).train.lrr", "unknown key")


def test_wrong_types_and_ranges(tmp_path):
    sft = sft_stage(lr="fast", batch_size=0)
    problems = _problems(tmp_path, [world_stage(prompts="many"), sft])
    _one(problems, "stages[0] (world).prompts", "integer", "'many'")
    _one(problems, "stages[1] (sft).train.lr", "number", "'fast'")
    _one(problems, "stages[1] (sft).train.batch_size", "greater than or equal to 1")


def test_unknown_kind_lists_known_kinds(tmp_path):
    problems = _problems(tmp_path, [world_stage(), {"name": "x", "kind": "bogus"}])
    msg = _one(problems, "stages[1] (x).kind", "unknown stage kind 'bogus'")
    assert "sft" in msg and "world" in msg


def test_reference_to_later_stage(tmp_path):
    problems = _problems(tmp_path, [sft_stage(), world_stage()])
    _one(problems, "stages[0] (sft).data", "'world.sft' refers to a later stage")
    _one(problems, "stages[0] (sft).model.tokenizer", "refers to a later stage")


def test_reference_to_unknown_stage_and_output(tmp_path):
    sft = sft_stage()
    sft["data"] = "world.sftt"
    sft["model"]["tokenizer"] = "wrold.tokenizer"
    problems = _problems(tmp_path, [world_stage(), sft])
    msg = _one(problems, "stages[1] (sft).data", "stage 'world' (kind world) has no output 'sftt'")
    assert "helpsteer_train" in msg  # lists what it has
    _one(problems, "stages[1] (sft).model.tokenizer", "'wrold.tokenizer' is neither an earlier stage")


def test_model_from_unknown_stage(tmp_path):
    sft = sft_stage()
    sft["model"] = {"from": "nosuch"}
    problems = _problems(tmp_path, [world_stage(), sft])
    _one(problems, "stages[1] (sft).model.from", "unknown stage 'nosuch'", "earlier stages: world")


def test_missing_file(tmp_path):
    sft = sft_stage()
    sft["data"] = str(tmp_path / "missing.jsonl")
    problems = _problems(tmp_path, [world_stage(), sft])
    _one(problems, "stages[1] (sft).data", "file not found", "missing.jsonl")


def test_model_needs_exactly_one_source(tmp_path):
    sft = sft_stage()
    sft["model"]["path"] = "org/model"
    problems = _problems(tmp_path, [world_stage(), sft])
    _one(problems, "stages[1] (sft).model", "exactly one of path, from, tiny")


def test_duplicate_names_and_missing_run_dir(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"stages": [world_stage(), world_stage()]}))
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    _one(info.value.problems, "run_dir", "required field is missing")
    problems = _problems(tmp_path, [world_stage(), world_stage()])
    _one(problems, "stages[1] (world).name", "duplicate stage name 'world'")


def test_all_problems_reported_at_once(tmp_path):
    sft = sft_stage(lr=-1)
    sft["data"] = "world.nope"
    late = sft_stage()
    late.update(name="sft2", data="world.sft")  # refers to a broken stage: no spurious error
    problems = _problems(tmp_path, [world_stage(prompts=1), sft, {"name": "z", "kind": "zzz"}, late])
    _one(problems, "stages[0] (world).prompts", "greater than or equal to 10")
    _one(problems, "stages[1] (sft).train.lr", "greater than 0")
    _one(problems, "stages[2] (z).kind", "unknown stage kind")
    assert not any("sft2" in p for p in problems), problems


def test_set_overrides_types_and_unknown_stage(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft_stage()])
    recipe = load_recipe(path, ["stages.sft.train.lr=3e-4", "seed=7", "stages.world.prompts=300"])
    assert recipe.stage("sft").train.lr == pytest.approx(3e-4)
    assert recipe.seed == 7 and recipe.stage("world").prompts == 300
    with pytest.raises(ConfigError) as info:
        load_recipe(path, ["stages.rm.train.lr=1"])
    _one(info.value.problems, "no stage named 'rm'", "stages: world, sft")
    with pytest.raises(ConfigError) as info:
        load_recipe(path, ["stages.sft.train.lr"])
    _one(info.value.problems, "expected KEY=VALUE")
    with pytest.raises(ConfigError) as info:
        load_recipe(path, ["stages.sft.train.bogus=1"])
    _one(info.value.problems, "stages[1] (sft).train.bogus", "unknown key")


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("run_dir: x\nstages: [\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    _one(info.value.problems, "not valid YAML")


def test_cli_exit_code_2_and_message(tmp_path, capsys):
    sft = sft_stage(lr="fast")
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft])
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "stages[1] (sft).train.lr" in err and str(path) in err
    assert not (tmp_path / "run").exists()  # nothing ran, nothing written


def test_cli_unknown_force_stage(tmp_path, capsys):
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage()])
    assert main(["run", str(path), "--force", "nope", "--dry-run"]) == 2
    assert "--force nope: no such stage" in capsys.readouterr().err


def test_dry_run_prints_plan(tmp_path, capsys):
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft_stage()])
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sft" in out and "world" in out and "helpsteer_train" in out and "run" in out
    assert not (tmp_path / "run").exists()


def test_gpu_recipes_fit_their_gpus_by_the_plans_estimate():
    """Every training stage of the shipped GPU recipes has an estimate within its GPU's memory."""
    from pathlib import Path

    from align.memory import stage_memory

    gpu_gib = {"helpsteer2_llama31_8b_8gpu": 80, "helpsteer2_llama31_70b_4nodes": 80,
               "helpsteer2_llama31_8b_lora_1x24gb": 24}
    for path in sorted((Path(__file__).parents[1] / "recipes" / "gpu").glob("*.yaml")):
        recipe = load_recipe(path, ["distributed.main_process_ip=10.0.0.1"] if "nodes" in path.stem else [])
        stages = {s.name: s for s in recipe.stages}
        for cfg in recipe.stages:
            mem = stage_memory(cfg, stages)
            if getattr(cfg, "train", None) is None:
                assert mem is None, cfg.name
                continue
            assert mem is not None and "unknown" not in mem, (path.stem, cfg.name, mem)
            assert mem["total"] < gpu_gib[path.stem] - 1, (path.stem, cfg.name, round(mem["total"], 1))
    steerlm2 = stages_of(str(Path(__file__).parents[1] / "recipes/gpu/helpsteer2_llama31_8b_8gpu.yaml"))["steerlm2"]
    assert steerlm2["frozen"] > 25 and steerlm2["params_b"] > 8  # reference + RM, both 8B bf16


def stages_of(path: str) -> dict:
    from align.memory import stage_memory

    recipe = load_recipe(path)
    stages = {s.name: s for s in recipe.stages}
    return {name: stage_memory(cfg, stages) for name, cfg in stages.items()}


def test_steerlm2_memory_unknown_policy_says_so(tmp_path, capsys):
    """A steerlm2 policy the plan cannot read (a directory with no config) is 'unknown', not silently '-'."""
    policy = tmp_path / "policy"
    policy.mkdir()
    stage = {"name": "s2", "kind": "steerlm2", "policy": str(policy), "reference": str(policy),
             "reward_model": str(policy), "prompts": str(policy)}
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [stage])
    assert stages_of(str(path))["s2"] == {"unknown": f"policy {str(policy)!r} is not a model config this plan can read"}
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "memory s2: unknown (policy" in capsys.readouterr().out.replace("\n", "")


def test_ppo_distributed_engines_and_divisible_batches(tmp_path):
    """ppo takes DDP, DeepSpeed and FSDP (also from the recipe default); it refuses batches the processes don't
    divide, gradient accumulation under DeepSpeed (a minibatch is one optimizer step), and LoRA when sharded."""
    ppo = {"name": "ppo", "kind": "ppo", "model": {"from": "sft"}, "prompts": "world.prompts_train",
           "reward": {"oracle": "goodness"}, "rollout_batch": 8, "minibatch": 4}
    stages = [world_stage(), sft_stage(), ppo]
    deepspeed = {"strategy": "deepspeed", "zero_stage": 3, "num_processes": 2}
    _one(_problems(tmp_path, stages, distributed={"num_processes": 3}), "stages[2] (ppo).distributed",
         "multiples of the 3 processes")
    _one(_problems(tmp_path, [world_stage(), sft_stage(), {**ppo, "train": {"grad_accum": 2}}], distributed=deepspeed),
         "stages[2] (ppo).distributed", "grad_accum 1")
    lora = {"tiny": {"hidden_size": 32, "layers": 1, "heads": 2}, "tokenizer": "world.tokenizer", "lora": {"r": 4}}
    _one(_problems(tmp_path, [world_stage(), {**ppo, "model": lora}], distributed=deepspeed),
         "ppo", "use strategy ddp with LoRA")
    path = tmp_path / "ok.yaml"
    for dist in (deepspeed, {"strategy": "fsdp", "num_processes": 2}):
        path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "distributed": dist,
                                        "stages": [world_stage(), sft_stage(), ppo]}))
        assert load_recipe(path).stage("ppo").distributed.strategy == dist["strategy"]
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "distributed": deepspeed,
                                    "stages": [world_stage(), sft_stage(),
                                               {**ppo, "distributed": {"num_processes": 4}}]}))
    assert load_recipe(path).stage("ppo").distributed.world_size == 4
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "distributed": deepspeed,
                                    "stages": [world_stage(), sft_stage(), {**ppo, "distributed": None}]}))
    assert load_recipe(path).stage("ppo").distributed is None


RECIPES = sorted((Path(__file__).parents[1] / "recipes").rglob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_validates(path):
    """Every recipe the README points to loads (anchors and merge keys included); one that names a
    model from a package this machine lacks is skipped, not passed."""
    from align.errors import ConfigError
    from align.recipe import load_recipe

    try:
        recipe = load_recipe(path)
    except ConfigError as exc:
        if all("is not installed" in p for p in exc.problems):
            pytest.skip(f"needs a package: {exc.problems[0]}")
        raise
    assert recipe.stages
