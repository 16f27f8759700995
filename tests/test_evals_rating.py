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
    assert combine_swapped("A", "error") == "error" and combine_swapped("error", "B") == "error"  # dropped
    assert combine_swapped("tie", "tie") == "tie"
    assert summarize(["A", "A", "B", "tie"]) == {"win": 2, "loss": 1, "tie": 1, "error": 0, "valid": 4,
                                                 "win_rate": 0.625}
    # FastChat drops unparseable verdicts: a judge that failed everywhere has no win rate, not 0.5
    assert summarize(["error"] * 16) == {"win": 0, "loss": 0, "tie": 0, "error": 16, "valid": 0}
    assert summarize(["A", "error", "error", "B"])["win_rate"] == 0.5


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


def test_reports_count_valid_judgements_bootstrap_and_flag_thin_models(tmp_path):
    """A model with 1 valid judgement of 16 is flagged, not ranked first at 10.00; a category with no
    valid rating shows `-` (and is a gap on the radar, not a 0); scores carry 95 % bootstrap intervals."""
    from evals.bootstrap import paired_difference, question_means
    from evals.questions import Question
    from evals.report import aggregate, markdown_report, radar_chart, ranking

    qs = [Question(i, "writing" if i < 4 else "math", ["a", "b"]) for i in range(8)]
    good = [[7.0, 6.0], [8.0, 7.0], [6.0, 6.0], [9.0, 8.0], [5.0, 4.0], [6.0, 7.0], [7.0, 5.0], [8.0, 6.0]]
    thin = [[10.0, -1.0]] + [[-1.0, -1.0]] * 7
    no_math = [[6.0, 6.0]] * 4 + [[-1.0, -1.0]] * 4
    results = {"good": aggregate(qs, good), "thin": aggregate(qs, thin), "no_math": aggregate(qs, no_math)}
    g = results["good"]
    assert g["mtbench/valid"] == 16 and g["mtbench/judged"] == 16 and g["mtbench/n/category/math"] == 8
    assert g["mtbench/score_low"] < g["mtbench/score"] < g["mtbench/score_high"]
    assert results["thin"]["mtbench/score"] == 10.0 and results["thin"]["mtbench/valid"] == 1
    assert ranking(results)[-1] == "thin"  # flagged models go last
    text = markdown_report(results, title="t", judge="j", n_questions=8)
    assert "1. **good**" in text and "**thin**: not ranked, only 1 of 16 judgements valid" in text
    math_row = next(line for line in text.splitlines() if line.startswith("| math |"))
    assert "| - |" in math_row.replace(" (n=0)", "")  # no_math's empty category: missing, not 0
    radar_chart(results, tmp_path / "radar.png")
    same = paired_difference(question_means(good), question_means(good))
    assert same == {"diff": 0.0, "low": 0.0, "high": 0.0, "n": 8.0}
    up = paired_difference(question_means([[r + 1 for r in row] for row in good]), question_means(good))
    assert up["diff"] == 1.0 and up["low"] == up["high"] == 1.0
    noisy = paired_difference(question_means(good), question_means(no_math))
    assert noisy["n"] == 4 and noisy["low"] < noisy["diff"] < noisy["high"]
