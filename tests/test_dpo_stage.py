"""The dpo and ppo stage kinds, end to end on a tiny world (ratings pairs, iterative pairs, LoRA, PPO)."""
import json

import pytest

from align.cli import main
from tests.helpers import sft_stage, world_stage, write_recipe

EVAL = {"prompts": "world.prompts_test", "max_prompts": 8, "max_new_tokens": 8}
TRAIN = {"max_steps": 2, "lr": 1e-3, "batch_size": 4, "max_length": 128, "save_every": 0, "log_every": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dpo_stage")
    stages = [
        world_stage(prompts=60), sft_stage(max_steps=3),
        {"name": "dpo", "kind": "dpo", "model": "sft", "pairs": {"source": "ratings", "data": "world.helpsteer_train"},
         "reward": {"oracle": "goodness"}, "loss_type": "scaled", "train": TRAIN, "oracle_eval": EVAL,
         "eval_samples": 4},
        {"name": "idpo", "kind": "dpo", "model": {"from": "sft", "lora": {"r": 4}},
         "pairs": {"source": "policy", "data": "world.prompts_train", "rounds": 2, "prompts_per_round": 4,
                   "samples_per_prompt": 3, "max_new_tokens": 8, "temperature": 1.0},
         "reward": {"oracle": "goodness"}, "train": TRAIN, "oracle_eval": EVAL, "eval_samples": 4},
        {"name": "ppo", "kind": "ppo", "model": "sft", "prompts": "world.prompts_train",
         "reward": {"oracle": "goodness"}, "steps": 1, "rollout_batch": 4, "minibatch": 4, "ppo_epochs": 1,
         "max_new_tokens": 8, "train": {"lr": 1e-3}, "oracle_eval": EVAL, "eval_samples": 4},
    ]
    path = write_recipe(tmp / "r.yaml", tmp / "run", stages)
    assert main(["run", str(path)]) == 0
    return tmp / "run"


def _metrics(run, name):
    return json.loads((run / name / "metrics.json").read_text())


def test_dpo_stage_reports_oracle_reward_kl_length(run):
    m = _metrics(run, "dpo")
    for key in ("oracle/helpfulness/before", "oracle/helpfulness/after", "oracle/correctness/before",
                "oracle/correctness/after", "reward/before", "reward/after", "kl/before", "kl/after",
                "response_length/after", "train/loss_final"):
        assert key in m, key
    assert m["train/steps"] == 2 and m["data/pairs"] > 0
    assert m["kl/before"] == pytest.approx(0.0, abs=1e-4)  # the reference is the starting policy
    assert (run / "dpo" / "model" / "config.json").exists()


def test_iterative_dpo_with_lora_runs_rounds(run):
    m = _metrics(run, "idpo")
    assert "round0/pairs" in m and "round1/pairs" in m and "round0/sample_reward" in m
    assert m["kl/before"] == pytest.approx(0.0, abs=1e-4)  # adapter disabled = base model = reference


def test_ppo_stage_reports_value_loss_clip_entropy(run):
    m = _metrics(run, "ppo")
    for key in ("oracle/helpfulness/after", "reward/after", "kl/after", "response_length/after",
                "ppo/value_loss_final", "ppo/clip_fraction_final", "ppo/entropy_final"):
        assert key in m, key


def test_recipe_rejects_policy_pairs_without_reward(tmp_path):
    stages = [world_stage(prompts=60), sft_stage(),
              {"name": "d", "kind": "dpo", "model": "sft", "pairs": {"source": "policy", "data": "world.prompts_train"}}]
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "run", stages)
    assert main(["run", str(path), "--dry-run"]) == 2


@pytest.mark.parametrize("pairing, expected", [
    ("best_worst", [(1, 3)]),
    ("best_rest", [(1, 0), (1, 2), (1, 3)]),
    ("all", [(1, 0), (1, 2), (1, 3), (0, 3), (2, 3)]),
])
def test_policy_pairing_pairs_strictly_better_with_worse(pairing, expected):
    from align.data.pairs import pair_indices

    # sample 1 is best, 0 and 2 tie (never paired with each other), 3 is worst
    assert sorted(pair_indices([2.0, 3.0, 2.0, 0.5], pairing)) == sorted(expected)
    assert pair_indices([1.0, 1.0, 1.0], pairing) == []  # all tied: no pair
    assert sorted(pair_indices([3.0, 3.0, 1.0], pairing)) == [(0, 2), (1, 2)]  # both best answers are chosen
