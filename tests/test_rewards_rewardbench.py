"""RewardBench-style scoring: ties are wrong, sections weighted by the official example counts."""
import json

import pytest

from rewards.metrics import attribute_metrics, pairwise_accuracy, pearson
from rewards.rewardbench import EXAMPLE_COUNTS, load_rewardbench, section_scores, subset_accuracies


def test_hand_made_set():
    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-hard", "llmbar-natural", "llmbar-natural",
               "math-prm", "hep-go"]
    chosen = [2.0, 1.0, 3.0, 0.0, 0.0, 5.0, 0.0]
    rejected = [1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 1.0]  # the second pair is a tie: wrong
    acc = subset_accuracies(subsets, chosen, rejected)
    assert acc == {"alpacaeval-easy": 0.5, "mt-bench-hard": 1.0, "llmbar-natural": 0.0, "math-prm": 1.0,
                   "hep-go": 0.0}
    scores = section_scores(acc)
    assert set(scores) == {"Chat", "Chat Hard", "Reasoning", "overall"}  # no Safety subsets present
    assert scores["Chat"] == pytest.approx(0.5)
    assert scores["Chat Hard"] == pytest.approx(37 / 137)  # 37*1 + 100*0 over 37+100
    assert scores["Reasoning"] == pytest.approx(984 / 1148)  # math-prm upweighted to 984
    assert scores["overall"] == pytest.approx((0.5 + 37 / 137 + 984 / 1148) / 3)
    assert EXAMPLE_COUNTS["math-prm"] == 984


def test_load_rewardbench_checks_columns(tmp_path):
    from align.errors import DataError

    good = tmp_path / "rb.jsonl"
    good.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "subset": "hep-go"}) + "\n")
    assert load_rewardbench(str(good))[0]["subset"] == "hep-go"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(DataError, match="subset"):
        load_rewardbench(str(bad))


def test_pairwise_accuracy_and_pearson():
    import torch

    assert pairwise_accuracy(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 4.0])) == pytest.approx(1 / 3)
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    pred = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 5.0]])
    labels = torch.tensor([[1.0, -100.0], [3.0, 1.0], [3.0, 4.0]])
    m = attribute_metrics(pred, labels, ["a", "b"])
    assert m["eval/mae/a"] == pytest.approx(1 / 3)
    assert m["eval/mae/b"] == pytest.approx(0.5)  # the missing label is skipped
