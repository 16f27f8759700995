"""The gold-reward pieces: the oracle behind the attribute-scorer interface, the reward-source
specs, pairs spread over prompts, and the headroom / gain / hacking-gap figures."""
import pytest
import torch

from align.data import PreferencePair, spread_pairs
from align.evaluation import gain_metrics
from align.reward_sources import AttributeSourceSpec, RewardSpec
from align.world.oracle import OracleAttributeScorer, OracleReward, annotate


def test_oracle_attribute_scorer_returns_the_oracle_labels_in_attribute_order():
    scorer = OracleAttributeScorer()
    prompts = [[{"role": "user", "content": "What is 2 plus 3?"}]] * 3
    responses = ["The answer is 5.", "The answer is 7.", "I think the answer is 5."]
    pred = scorer.predict(prompts, responses)
    assert pred.shape == (3, 5)
    for row, r in zip(pred, responses):
        labels = annotate("What is 2 plus 3?", r)
        assert row.tolist() == [float(labels[a]) for a in scorer.attributes]
    assert pred[0, 0] == 4 and pred[1, 1] == 1 and pred[2, 1] == 3  # right, wrong, hedged


def test_oracle_attribute_scorer_refuses_prompts_it_cannot_label():
    from align.errors import DataError

    with pytest.raises(DataError, match="not a world task"):
        OracleAttributeScorer().predict([[{"role": "user", "content": "Write a poem."}]], ["ok"])


def test_integer_labels_give_the_beta_probabilities_the_docstring_states():
    from align.stages.steerlm2 import attribute_log_probs

    scorer = OracleAttributeScorer()
    pred = torch.tensor([[4.0, 4, 4, 0, 1], [3.0, 3, 4, 0, 1]])
    lp = attribute_log_probs(scorer.attributes, pred, [{"helpfulness": 4}, {"helpfulness": 4}]).exp()
    assert lp[0] == pytest.approx(1.0, abs=1e-3)       # the label asked for
    assert lp[1] == pytest.approx(0.059, abs=2e-3)     # one step below it
    sharp = attribute_log_probs(scorer.attributes, pred, [{"verbosity": 2}, {"verbosity": 1}], 96.0).exp()
    assert sharp[0] == pytest.approx(0.0042, abs=3e-4)  # concentration 96: one step off, as the docstring says
    assert sharp[1] == pytest.approx(0.995, abs=2e-3)


def test_per_attribute_concentration_sharpens_only_the_attributes_it_names():
    from rewards.beta import beta_attribute_log_prob

    from align.stages.steerlm2 import SteerLM2Config, attribute_log_probs

    attrs = OracleAttributeScorer().attributes
    pred = torch.tensor([[3.0, 3.0, 4.0, 0.0, 2.0], [2.6, 3.4, 3.0, 1.0, 2.6]])
    targets = [{"helpfulness": 4, "verbosity": 2}] * 2
    mixed = attribute_log_probs(attrs, pred, targets, {"verbosity": 96.0})
    # the same as helpfulness at 24 (the default for unnamed attributes) plus verbosity at 96, row by row
    help24 = beta_attribute_log_prob(pred[:, 0], torch.tensor(4.0), concentration=24.0)
    verb96 = beta_attribute_log_prob(pred[:, 4], torch.tensor(2.0), concentration=96.0)
    assert torch.allclose(mixed, (help24 + verb96).float(), atol=1e-6)
    assert not torch.allclose(mixed, attribute_log_probs(attrs, pred, targets, 24.0), atol=1e-3)
    with pytest.raises(ValueError, match="concentration must be > 0"):
        SteerLM2Config(name="s2", policy="a", reference="b", reward_model="rm", prompts="p", concentration={"verbosity": 0})


def test_reward_specs_need_exactly_one_source_and_name_it():
    assert RewardSpec(oracle="goodness").describe() == "oracle:goodness"
    assert RewardSpec(model="rm").describe() == "reward_model:rm:goodness"
    assert AttributeSourceSpec(oracle=True).describe() == "oracle"
    for bad in ({}, {"model": "rm", "oracle": "goodness"}):
        with pytest.raises(ValueError, match="exactly one"):
            RewardSpec(**bad)
    with pytest.raises(ValueError, match="exactly one"):
        AttributeSourceSpec(model="rm", oracle=True)


def test_oracle_reward_is_the_weighted_gold_labels():
    prompts = [[{"role": "user", "content": "What is 2 plus 3?"}], [{"role": "user", "content": "Hi"}]]
    got = OracleReward("goodness")(prompts, ["The answer is 5.", "hello"])
    assert got == [pytest.approx(0.65 * 4 + 0.8 * 4 + 0.45 * 4), 0.0]


def _pairs(prompts: int, per: int) -> list[PreferencePair]:
    return [PreferencePair(f"p{i}", [], f"c{j}", f"r{j}", 1.0) for i in range(prompts) for j in range(per)]


def test_spread_pairs_draws_round_robin_over_prompts():
    pairs = _pairs(10, 50)  # the first 100 pairs in row order cover 2 prompts
    got = spread_pairs(pairs, max_pairs=100, seed=0)
    per_prompt = {p: sum(x.prompt == p for x in got) for p in {x.prompt for x in got}}
    assert len(got) == 100 and len(per_prompt) == 10 and set(per_prompt.values()) == {10}
    capped = spread_pairs(pairs, per_prompt=3, seed=0)
    assert len(capped) == 30
    assert spread_pairs(pairs, max_pairs=100, seed=0) == got  # seeded
    assert spread_pairs(pairs) is pairs                        # no limit: unchanged


def test_gains_and_hacking_gap_from_before_after_figures():
    m = {"oracle/helpfulness/before": 2.0, "oracle/helpfulness/after": 2.5, "rm/helpfulness/before": 2.1,
         "rm/helpfulness/after": 3.1, "rm/reward/before": -0.2, "rm/reward/after": 0.4}
    g = gain_metrics(m)
    assert g["gain/oracle_helpfulness"] == pytest.approx(0.5)
    assert g["gain/rm_helpfulness"] == pytest.approx(1.0)
    assert g["gain/rm_reward"] == pytest.approx(0.6)
    assert g["hacking_gap"] == pytest.approx(0.5)  # the RM thinks it gained twice what the oracle saw
    assert gain_metrics({"oracle/helpfulness/before": 1.0}) == {}
