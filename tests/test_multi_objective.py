"""Multi-objective RL from the attribute heads: GDPO-style per-attribute normalisation and an
attribute-target reward with the target written into the prompt as SteerLM writes it."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from align.cli import main
from rewards.vector import AttributeTargetReward, AttributeVectorReward, standardized_sum
from tests.helpers import TINY


class FixedScorer:
    """An AttributeScorer with given predictions (the interface RewardScorer and the oracle implement)."""

    attributes = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]

    def __init__(self, rows):
        self.rows = torch.tensor(rows, dtype=torch.float32)

    def predict(self, prompts, responses):
        return self.rows[: len(responses)]


def test_gdpo_standardises_each_attribute_before_weighting():
    # verbosity spreads widely, correctness narrowly; a weighted sum is ruled by verbosity, GDPO is not
    v = torch.tensor([[0.0, 3.0], [0.1, 0.0], [0.2, 1.0], [0.3, 2.0]])  # [correctness, verbosity]
    w = torch.tensor([1.0, 1.0])
    out = standardized_sum(v, w)
    z = (v - v.mean(0)) / v.std(0, unbiased=False)
    assert torch.allclose(out, z.sum(1), atol=1e-4)
    assert (v @ w).argmax() == 0 and out.argmax() == 3  # the spread no longer decides
    # within groups: each group of 2 standardised on its own
    g = standardized_sum(v, w, groups=2)
    assert torch.allclose(g, torch.cat([standardized_sum(v[:2], w), standardized_sum(v[2:], w)]), atol=1e-6)
    # an attribute that is constant in a group contributes nothing (no division blow-up)
    assert torch.isfinite(standardized_sum(torch.ones(4, 2), w)).all()


def test_vector_reward_keeps_the_weighted_attributes():
    scorer = FixedScorer([[4, 3, 4, 1, 2], [1, 0, 2, 3, 4]])
    r = AttributeVectorReward(scorer, "goodness")
    assert r.attributes == ["helpfulness", "correctness", "coherence"]
    assert r.vectors([[]] * 2, ["a", "b"]).tolist() == [[4, 3, 4], [1, 0, 2]]
    assert r([[]] * 2, ["a", "b"]) == pytest.approx([0.65 * 4 + 0.8 * 3 + 0.45 * 4, 0.65 + 0.9])


def test_target_reward_is_minus_the_distance_to_each_responses_target():
    scorer = FixedScorer([[4, 4, 4, 0, 1], [2, 4, 4, 2, 3]])
    r = AttributeTargetReward(scorer)
    t = {"helpfulness": 4, "verbosity": 3}
    assert r([[]] * 2, ["a", "b"], targets=[t, t]) == pytest.approx([-(0 + 2) / 2, -(2 + 0) / 2])
    with pytest.raises(ValueError, match="target"):
        r([[]] * 2, ["a", "b"])


def _recipe(tmp_path, rl: dict) -> str:
    stages = [
        {"name": "world", "kind": "world", "prompts": 60, "test_prompts": 8},
        {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer"},
         "data": "world.sft", "train": {"max_steps": 4, "batch_size": 8, "max_length": 128}},
        {"name": "steerlm1", "kind": "steerlm_sft", "model": {"from": "sft"}, "data": "world.helpsteer_train",
         "train": {"max_steps": 4, "batch_size": 8, "max_length": 128}},
        {"name": "rl", "kind": "ppo", "prompts": "world.prompts_train", "steps": 2, "rollout_batch": 8,
         "minibatch": 4, "max_new_tokens": 12, "eval_samples": 4,
         "oracle_eval": {"prompts": "world.prompts_test", "max_prompts": 4, "max_new_tokens": 12}, **rl},
    ]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages}))
    return str(path)


@pytest.mark.parametrize("trainer", [None, "align.trainers.grpo:GRPOTrainer"])
def test_gdpo_ppo_and_grpo_run_on_the_world(tmp_path, capsys, trainer):
    rl = {"model": {"from": "sft"}, "reward": {"oracle": "goodness", "objective": "gdpo"}}
    if trainer:
        rl.update(trainer=trainer, trainer_options={"group_size": 4})
    assert main(["run", _recipe(tmp_path, rl)]) == 0
    m = json.loads((tmp_path / "run" / "rl" / "metrics.json").read_text())
    assert m["reward/source"] == "oracle:goodness:gdpo"
    assert m["ppo/steps"] == 2 and "reward/after" in m and "oracle/helpfulness/after" in m


def test_attribute_target_ppo_asks_for_targets_and_measures_steering(tmp_path, capsys):
    rl = {"model": {"from": "steerlm1"}, "reward": {"oracle": "goodness", "objective": "target"},
          "target_distribution": [{"attributes": {"helpfulness": 4, "correctness": 4, "verbosity": 1}},
                                  {"attributes": {"helpfulness": 4, "correctness": 4, "verbosity": 3}}],
          "steerability": {"prompts": "world.prompts_test", "max_prompts": 2, "max_new_tokens": 12,
                           "targets": [{"helpfulness": 4, "verbosity": 1}, {"helpfulness": 4, "verbosity": 3}]}}
    assert main(["run", _recipe(tmp_path, rl)]) == 0
    m = json.loads((tmp_path / "run" / "rl" / "metrics.json").read_text())
    assert m["reward/source"] == "oracle:target"
    steer = [k for k in m if k.startswith("steer")]
    assert any(k.endswith("/before") for k in steer) and any(not k.endswith("/before") for k in steer), steer
    assert -4.0 <= m["reward/after"] <= 0.0  # minus a distance
    # the target reward without targets to ask for is a recipe error
    rl.pop("target_distribution"), rl.pop("steerability")
    assert main(["run", _recipe(tmp_path, rl)]) == 2
    assert "target_distribution" in capsys.readouterr().err
