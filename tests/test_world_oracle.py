"""Oracle rules on hand-written cases: the gold judge must be right before anything else."""
import random

import pytest

from align.attributes import ATTRIBUTES
from align.world import tasks as T
from align.world.oracle import OracleJudge, annotate

ADD = "What is 23 plus 41?"


def flat(*turns):
    return T.flatten_turns([{"role": ("user", "assistant")[i % 2], "content": t}
                            for i, t in enumerate(turns)])


def test_correct_concise_answer_scores_top():
    for response in ("The answer is 64.", "64.", "Sure. It is 64."):
        a = annotate(ADD, response)
        assert list(a) == list(ATTRIBUTES)
        assert a["correctness"] == 4 and a["helpfulness"] == 4 and a["coherence"] == 4


def test_wrong_hedged_conflicting_and_missing_answers():
    assert annotate(ADD, "The answer is 65.")["correctness"] == 1
    assert annotate(ADD, "The answer is 65.")["helpfulness"] <= 1
    assert annotate(ADD, "I think the answer is 64.")["correctness"] == 3
    assert annotate(ADD, "It is 64 or 63.")["correctness"] == 2
    assert annotate(ADD, "I do not know.")["correctness"] == 0


@pytest.mark.parametrize("prompt,good,bad", [
    ("Which is larger, 17 or 42?", "42.", "17."),
    ("How many letters are in the word apple?", "5.", "4."),
    ("Compute 41 - 23.", "18.", "64."),
    ("Repeat the word banana.", "banana.", "apple."),
    ("Sort these numbers: 9 2 5.", "2 5 9.", "2 5 8."),
    ("List 3 colors.", "red, blue and green.", "dog, cat and lion."),
])
def test_each_task_kind(prompt, good, bad):
    assert annotate(prompt, good)["correctness"] == 4
    assert annotate(prompt, bad)["correctness"] == 1


def test_partial_answers():
    assert annotate("Sort these numbers: 9 2 5.", "9 2 5.")["correctness"] == 2
    assert annotate("List 3 colors.", "red, blue and dog.")["correctness"] == 3
    assert annotate("Repeat the word banana.", "banana or apple.")["correctness"] == 2


def test_verbosity_complexity_coherence():
    long = "The answer is 64. " + " ".join(T.SIMPLE_SENTENCES)
    assert annotate(ADD, long)["verbosity"] == 4
    assert annotate(ADD, long)["helpfulness"] == 3  # rambling costs one point
    plain = annotate(ADD, "The answer is 64. I hope this helps.")
    fancy = annotate(ADD, "The answer is 64. Consequently, the computation is rigorously verified.")
    assert fancy["complexity"] > plain["complexity"] == 0
    assert annotate(ADD, "The the the answer is 64.")["coherence"] <= 2
    assert annotate(ADD, "It is 64. It is 64.")["coherence"] <= 2
    assert annotate(ADD, "The answer zxq blorp is 64.")["coherence"] <= 2
    assert annotate(ADD, "") == {a: 0 for a in ATTRIBUTES}


def test_non_world_prompt_is_none():
    assert annotate("Write a poem about the sea.", "64.") is None
    assert annotate("Repeat the word house.", "house.") is None  # not an item of the world


def test_multi_turn_follow_up_uses_first_turn_answer():
    prompt = flat(ADD, "The answer is 64.", "Now add 7 to that result.")
    assert annotate(prompt, "71.")["correctness"] == 4
    assert annotate(prompt, "7.")["correctness"] == 1
    # the truth counts, not what the assistant said in turn one
    wrong_turn = flat(ADD, "The answer is 60.", "Now double that result.")
    assert annotate(wrong_turn, "128.")["correctness"] == 4
    # a new task in turn two is judged on its own
    assert annotate(flat(ADD, "64.", "List 2 fruits."), "apple and pear.")["correctness"] == 4
    # a follow-up on a non-numeric task is not a world task
    assert annotate(flat("List 2 fruits.", "apple and pear.", "Now add 7 to that result."), "7.") is None


def test_garbage_scores_low():
    for junk in ("zxq blorp ## frub", "the the the the", "apple dog is the", "qqqq 64 64 64 zz"):
        assert annotate(ADD, junk)["helpfulness"] <= 1
    rng = random.Random(0)
    words = sorted({w for s in T.SIMPLE_SENTENCES + T.COMPLEX_SENTENCES for w in s.split()})
    for _ in range(200):
        text = " ".join(rng.choices(words + list(T.JUNK_TOKENS), k=rng.randint(1, 30)))
        assert annotate(ADD, text)["helpfulness"] <= 1


def test_judge_batch_and_means():
    judge = OracleJudge()
    prompts = [ADD, ADD, "Tell me a joke."]
    rows = judge.score(prompts, ["64.", "65.", "ha"])
    assert rows[2] is None and rows[0]["helpfulness"] == 4
    means = judge.mean_attributes(prompts, ["64.", "65.", "ha"])
    assert means["coverage"] == pytest.approx(2 / 3)
    assert means["correctness"] == pytest.approx(2.5)
    with pytest.raises(ValueError):
        judge.score([ADD], [])
