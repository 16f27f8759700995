"""The reward_model stage end to end on a tiny world: regression, BT from it, a user's JSONL, `align score`."""
import json

import pytest
import torch

from align.cli import main
from tests.helpers import TINY, world_stage, write_recipe

TRAIN = {"epochs": 2, "lr": 2e-3, "batch_size": 16, "max_length": 128, "save_every": 0, "log_every": 5,
         "eval_every": 10}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rm_stage")
    # A user's own HelpSteer2-format file: multi-turn prompts, one row missing a label (masked).
    rows = [json.loads(line) for line in (_world(tmp) / "data" / "helpsteer_train.jsonl").read_text().splitlines()]
    rows[0]["verbosity"] = None
    user_file = tmp / "mine.jsonl"
    user_file.write_text("".join(json.dumps(r) + "\n" for r in rows[:120]))
    stages = [
        world_stage(prompts=120),
        {"name": "rm", "kind": "reward_model", "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer"},
         "data": "world.helpsteer_train", "validation": "world.helpsteer_validation",
         "eval_pairs": "world.preference", "train": TRAIN},
        {"name": "bt", "kind": "reward_model", "model": {"from": "rm"}, "objective": "bradley_terry",
         "data": "world.preference", "split": "train", "validation": "world.preference",
         "validation_split": "validation", "bt_variant": "scaled",
         "train": {**TRAIN, "epochs": 1, "lr": 1e-3}},
        {"name": "mine", "kind": "reward_model",
         "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer", "lora": {"r": 4}},
         "data": str(user_file), "attributes": ["helpfulness", "verbosity"], "stats_rows": 50,
         "train": {**TRAIN, "epochs": 1}},
    ]
    path = write_recipe(tmp / "r.yaml", tmp / "run", stages)
    assert main(["run", str(path)]) == 0
    return tmp / "run"


def _world(tmp):
    from align.world.generator import generate_world

    out = tmp / "w"
    generate_world(out, prompts=120, seed=0, test_prompts=4)
    return out


def _metrics(run, name):
    return json.loads((run / name / "metrics.json").read_text())


def test_regression_stage_metrics_and_model(run):
    from rewards.scoring import RewardScorer

    m = _metrics(run, "rm")
    for attr in ("helpfulness", "correctness", "coherence", "complexity", "verbosity"):
        assert -1.0 <= m[f"eval/pearson/{attr}"] <= 1.0
        assert m[f"eval/mae/{attr}"] >= 0
    assert 0.0 <= m["eval/pairwise_accuracy"] <= 1.0
    assert m["train/loss_final"] < m["train/loss_first"]  # it learned something
    assert m["eval/best_loss"] <= m["eval/loss"] + 1e-9  # the kept model is the best seen
    stats = json.loads((run / "rm" / "model" / "reward_stats.json").read_text())
    assert set(stats["presets"]) == {"nemotron4_340b", "llama3_70b", "goodness"}
    assert stats["presets"]["goodness"]["std"] > 0
    assert m["reward/stats_rows"] == m["data/examples"]  # fewer rows than stats_rows: all of them
    scorer = RewardScorer.load(run / "rm" / "model", device="cpu")
    z = scorer.scalar([[{"role": "user", "content": "Add 2 and 3."}]], ["5."], standardize=True)
    assert torch.isfinite(z).all()
    assert not (run / "rm" / "checkpoints").exists()


def test_bt_stage_starts_from_regression_model(run):
    m = _metrics(run, "bt")
    assert 0.0 <= m["eval/pairwise_accuracy"] <= 1.0
    assert "train/accuracy_final" in m
    config = json.loads((run / "bt" / "model" / "config.json").read_text())
    assert config["attributes"] == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


def test_user_jsonl_with_lora_and_missing_label(run):
    m = _metrics(run, "mine")
    assert set(k for k in m if k.startswith("eval/pearson/")) == {"eval/pearson/helpfulness",
                                                                  "eval/pearson/verbosity"}
    config = json.loads((run / "mine" / "model" / "config.json").read_text())
    assert config["attributes"] == ["helpfulness", "verbosity"]
    assert "lora" not in json.dumps(config).lower()  # merged on save
    assert m["reward/stats_rows"] == 50  # reward_stats.json from a seeded sample of the 120 rows
    stats = json.loads((run / "mine" / "model" / "reward_stats.json").read_text())
    assert stats["n"] == 50 and all(v > 0 for v in torch.tensor(stats["attribute_cov"]).diagonal().tolist())


def test_score_command(run, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "Add 2 and 3.", "response": "5."}) + "\n"
                    + json.dumps({"messages": [{"role": "user", "content": "Add 1 and 1."},
                                               {"role": "assistant", "content": "2."}]}) + "\n")
    capsys.readouterr()
    assert main(["score", str(run / "rm" / "model"), str(rows), "--target", "helpfulness=4,verbosity=1",
                 "--weights", "llama3_70b", "--standardize"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 2 and {"helpfulness", "reward", "log_p_target"} <= set(lines[0])
    assert lines[0]["log_p_target"] < 0
    rb = tmp_path / "rb.jsonl"
    rb.write_text(json.dumps({"prompt": "Add 2 and 3.", "chosen": "5.", "rejected": "blorp", "subset": "hep-go"})
                  + "\n" + json.dumps({"prompt": "Add 1 and 1.", "chosen": "2.", "rejected": "3.", "subset": "my-own"})
                  + "\n")
    assert main(["score", str(run / "rm" / "model"), "--rewardbench", str(rb)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) == {"rewardbench/subset/hep-go", "rewardbench/subset/my-own", "rewardbench/Reasoning",
                        "rewardbench/overall", "rewardbench/unsectioned"}
    assert out["rewardbench/unsectioned"] == 1 and out["rewardbench/subset/hep-go"] in (0.0, 100.0)  # upstream's 0..100
    # a saved copy of allenai/reward-bench keeps its split "filtered": read by default, or named
    from datasets import Dataset, DatasetDict

    rows = [json.loads(x) for x in rb.read_text().splitlines()]
    DatasetDict({"raw": Dataset.from_list(rows[:1]), "filtered": Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "rb_saved"))
    assert main(["score", str(run / "rm" / "model"), "--rewardbench", str(tmp_path / "rb_saved")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rewardbench/unsectioned"] == 1
    assert main(["score", str(run / "rm" / "model"), "--rewardbench", str(tmp_path / "rb_saved"),
                 "--rewardbench-split", "raw"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rewardbench/unsectioned"] == 0
    assert main(["score", str(run / "rm" / "model"), str(rows), "--target", "helpfulness"]) == 2  # a bad --target: exit 2
