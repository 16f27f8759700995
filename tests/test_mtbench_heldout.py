"""`mtbench` stage `heldout:` block: config checks, `stage.output` model references, one tiny end-to-end run."""
import json

import pytest
import yaml

from align.errors import ConfigError
from align.recipe import load_recipe, stage_dump
from align.runner import Runner
from tests.helpers import sft_stage, world_stage, write_recipe


def _mtbench(**fields) -> dict:
    return {"name": "compare", "kind": "mtbench", "models": ["sft"], "questions": "world.mtbench_questions",
            **fields}


def _load(tmp_path, stages):
    return load_recipe(write_recipe(tmp_path / "r.yaml", tmp_path / "run", stages))


def _problems(tmp_path, stages) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, stages)
    return "\n".join(info.value.problems)


def test_no_heldout_block_dumps_as_before(tmp_path):
    cfg = _load(tmp_path, [world_stage(), sft_stage(), _mtbench()]).stage("compare")
    dumped = stage_dump(cfg)
    assert "heldout" not in dumped and "paper_methods" not in dumped  # same fingerprint as before the fields


def test_heldout_and_paper_methods_are_checked(tmp_path):
    base = [world_stage(), sft_stage()]
    msg = _problems(tmp_path, base + [_mtbench(heldout={"prompts": "world.prompts_test", "baseline": "dpo"})])
    assert "compare" in msg and "heldout.baseline 'dpo' is not one of models" in msg
    msg = _problems(tmp_path, base + [_mtbench(paper_methods={"sft": "SteerLM 3"})])
    assert "paper_methods.sft: unknown method 'SteerLM 3'" in msg and "SteerLM 2.0 it2" in msg
    msg = _problems(tmp_path, base + [_mtbench(paper_methods={"ppo": "PPO"})])
    assert "paper_methods: 'ppo' is not one of the models" in msg
    msg = _problems(tmp_path, base + [_mtbench(heldout={"prompts": "world.prompts_test", "kl_reference": "nope"})])
    assert "heldout.kl_reference" in msg and "'nope'" in msg
    msg = _problems(tmp_path, base + [_mtbench(heldout={"prompts": "world.prompts_test", "kl_samples": 0})])
    assert "heldout.kl_samples" in msg


def test_stage_output_model_references(tmp_path, monkeypatch):
    from align.stages.steerlm2 import SteerLM2Stage

    # the steerlm2 stage's per-iteration outputs (iter1, iter2, ...), as that stage provides them
    plain = SteerLM2Stage.outputs.__func__
    monkeypatch.setattr(SteerLM2Stage, "outputs", classmethod(
        lambda cls, cfg: {**plain(cls, cfg), **{f"iter{k}": f"iterations/iter{k}/model" for k in (1, 2)}}))
    steer2 = {"name": "steerlm2", "kind": "steerlm2", "policy": "sft", "reference": "sft", "reward_model": "sft",
              "prompts": "world"}
    stages = [world_stage(), sft_stage(), steer2,
              _mtbench(models=["sft", "sft.model", "steerlm2.iter1"], steered=["steerlm2.iter1"],
                       paper_methods={"sft": "SFT", "steerlm2.iter1": "SteerLM 2.0 it1"},
                       heldout={"prompts": "world.prompts_test", "baseline": "steerlm2.iter1", "kl_reference": "sft"})]
    recipe = _load(tmp_path, stages)
    assert recipe.depends_on["compare"] == ["world", "sft", "steerlm2"]
    stages[-1]["models"].append("steerlm2.iter9")
    assert "stage 'steerlm2' (kind steerlm2) has no output 'iter9'" in _problems(tmp_path, stages)

    from align.context import StageContext
    from evals.answers import model_name

    ctx = StageContext("compare", tmp_path / "run", tmp_path / "w", 0, {s.name: s for s in recipe.stages})
    assert ctx.resolve("steerlm2.iter1", "model") == str(tmp_path / "run" / "steerlm2" / "iterations/iter1/model")
    assert [model_name(m, ctx.stages) for m in recipe.stage("compare").models] == ["sft", "sft.model",
                                                                                    "steerlm2.iter1"]
    assert model_name("runs/x/dpo/model", ctx.stages) == "dpo"


def test_heldout_end_to_end(tmp_path):
    """sft and the same weights behind the label prefix (`sft.model`, steered); RM, KL to sft, gains over sft."""
    train = {"max_steps": 4, "lr": 1e-3, "batch_size": 8, "max_length": 128, "log_every": 2, "save_every": 0}
    rm = {"name": "rm", "kind": "reward_model", "model": {"from": "sft"}, "data": "world.helpsteer_train",
          "validation": "world.helpsteer_validation", "train": train}
    heldout = {"prompts": "world.prompts_test", "max_prompts": 12, "max_new_tokens": 12, "reward_model": "rm",
               "kl_reference": "sft", "kl_samples": 6}
    compare = _mtbench(models=["sft", "sft.model"], steered=["sft.model"], max_questions=7,
                       generation={"max_new_tokens": 8, "batch_size": 16}, pairwise_baseline="sft", heldout=heldout,
                       paper_methods={"sft": "SFT", "sft.model": "SteerLM"})
    Runner(_load(tmp_path, [world_stage(), sft_stage(max_steps=4), rm, compare])).run()

    out = tmp_path / "run" / "compare"
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["sft", "sft.model"]  # the reference string as written
    sft_r, steer_r = results["sft"], results["sft.model"]
    attrs = ["helpfulness", "correctness", "coherence", "complexity", "verbosity", "coverage"]
    for r in (sft_r, steer_r):
        assert {f"heldout/oracle/{a}" for a in attrs} <= set(r) and "mtbench/score" in r
        assert r["heldout/oracle/coverage"] == 1.0  # every world test prompt is a task the oracle reads
        assert {f"heldout/rm/{a}" for a in attrs[:5]} | {"heldout/rm_reward"} <= set(r)
    # the same weights, the same prompt: KL(sft || sft) is zero; behind the prefix it is not
    assert abs(sft_r["heldout/kl"]) < 1e-4
    assert steer_r["heldout/kl"] != pytest.approx(0.0, abs=1e-4)
    # gains over the baseline (sft), and the hacking gap = RM gain - oracle gain
    assert "heldout/gain/oracle_helpfulness" not in sft_r
    oracle_gain = steer_r["heldout/oracle/helpfulness"] - sft_r["heldout/oracle/helpfulness"]
    rm_gain = steer_r["heldout/rm/helpfulness"] - sft_r["heldout/rm/helpfulness"]
    assert steer_r["heldout/gain/oracle_helpfulness"] == pytest.approx(oracle_gain)
    assert steer_r["heldout/gain/rm_helpfulness"] == pytest.approx(rm_gain)
    assert steer_r["heldout/hacking_gap"] == pytest.approx(rm_gain - oracle_gain)

    # the per-prompt rows, the flat metrics and the report
    rows = [json.loads(x) for x in (out / "heldout" / "sft.model.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and set(rows[0]) == {"prompt", "answer", "oracle", "rm"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sft.model/heldout/hacking_gap"] == pytest.approx(steer_r["heldout/hacking_gap"])
    assert "sft/heldout/kl" in metrics and "rank/sft.model" in metrics
    report = (out / "report.md").read_text()
    assert "## Held-out prompts" in report and "| sft.model |" in report and "hacking gap" in report

    # both models answer the same held-out prompts; the resolved recipe keeps the block
    plain = [json.loads(x) for x in (out / "heldout" / "sft.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in plain] == [r["prompt"] for r in rows]
    resolved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert resolved["stages"][-1]["heldout"]["kl_samples"] == 6
