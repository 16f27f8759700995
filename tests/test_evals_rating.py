"""Judge-output parsing (fed malformed outputs) and the 1..10 mapping rules, by hand."""
import pytest
import torch

from evals.judges import RewardModelJudge, oracle_rating, rm_rating
from evals.pairwise import combine_swapped, summarize
from evals.questions import Question
from evals.rating import (
    linear_to_rating,
    parse_rating,
    parse_verdict,
    weighted_reward_range,
)


@pytest.mark.parametrize("text,expected", [
    ("The answer is fine. Rating: [[7]]", 7.0),
    ("Rating: [[8.5]]", 8.5),
    ("[[10]]", 10.0),
    ("no double brackets, but [6] here", 6.0),          # fallback parse
    ("first [[3]] then [[9]]", 3.0),                     # first match wins
    ("[4] and later [[9]]", 9.0),                        # [[x]] is preferred over [x]
    ("I would give it a 7 out of 10.", -1.0),            # no brackets
    ("Rating: [[seven]]", -1.0),                         # not a number
    ("Rating: [[0]]", -1.0),                             # outside 1..10
    ("Rating: [[11]]", -1.0),
    ("Rating: [[-3]]", -1.0),                            # the regex takes no sign: unparseable
    ("Rating: [[", -1.0),                                # truncated output
    ("", -1.0),
    (None, -1.0),
])
def test_parse_rating_malformed_and_valid(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("[[A]]", "A"), ("Final verdict: [[B]]", "B"), ("[[C]]", "tie"),
    ("[[A]] ... actually [[B]]", "error"), ("A is better", "error"), ("[A]", "error"), (None, "error"),
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_position_swap_rule():
    # consistent: A first wins, and with the order swapped the judge picks the second slot (= A)
    assert combine_swapped("A", "B") == "A"
    assert combine_swapped("B", "A") == "B"
    # position bias (picks slot A both times) or any error -> tie
    assert combine_swapped("A", "A") == "tie"
    assert combine_swapped("A", "error") == "tie"
    assert combine_swapped("tie", "tie") == "tie"
    assert summarize(["A", "A", "B", "tie"]) == {"win": 2, "loss": 1, "tie": 1, "win_rate": 0.625}


def test_linear_mapping_by_hand():
    assert linear_to_rating(0, 0, 4) == 1.0
    assert linear_to_rating(4, 0, 4) == 10.0
    assert linear_to_rating(2, 0, 4) == 5.5
    assert linear_to_rating(-3, 0, 4) == 1.0 and linear_to_rating(9, 0, 4) == 10.0  # clipped
    assert [oracle_rating(h) for h in range(5)] == [1.0, 3.25, 5.5, 7.75, 10.0]
    # Llama3-70B weights: low = 4 * -0.4 = -1.6, high = 4 * (0.65 + 0.8 + 0.45 + 0.55) = 9.8
    lo, hi = weighted_reward_range([0.65, 0.8, 0.45, 0.55, -0.4])
    assert lo == pytest.approx(-1.6) and hi == pytest.approx(9.8)
    # goodness: 0..7.6; reward 3.8 is half way -> 5.5
    assert rm_rating(3.8, [0.65, 0.8, 0.45, 0.0, 0.0]) == pytest.approx(5.5)


class _StubScorer:
    """Stands in for rewards.scoring.RewardScorer: records what the judge asks."""

    def __init__(self):
        self.attributes = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
        self.calls = []

    def scalar(self, prompts, responses, weights="goodness", standardize=False):
        self.calls.append((prompts, responses))
        return torch.tensor([7.6 if r == "perfect" else 0.0 for r in responses])


def test_rm_judge_scores_each_turn_with_its_conversation():
    scorer = _StubScorer()
    judge = RewardModelJudge(scorer, "goodness")
    q = Question(1, "math", ["Q1", "Q2"])
    ratings = judge.score([q], [["perfect", "bad"]])
    assert ratings == [[10.0, 1.0]]
    prompts, responses = scorer.calls[0]
    assert responses == ["perfect", "bad"]
    assert prompts[1] == [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "perfect"},
                          {"role": "user", "content": "Q2"}]
