"""AttributeRewardModel: save/load round trip, sequence-classifier checkpoints, LoRA, the scorer API."""
import json

import pytest
import torch

from align.config.base import LoRASpec
from align.config.model_spec import ModelSpec
from align.models import save_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from align.world.generator import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, prompts=40, test_prompts=4)
    return out


@pytest.fixture(scope="module")
def tiny_rm(world):
    from rewards.build import build_reward_model

    spec = ModelSpec(tiny={"hidden_size": 32, "layers": 2, "heads": 2}, tokenizer=str(world / "tokenizer"))
    return build_reward_model(spec, None, seed=0)


PROMPTS = [[{"role": "user", "content": "Add 2 and 3."}],
           [{"role": "user", "content": "Add 1 and 1."}, {"role": "assistant", "content": "2."},
            {"role": "user", "content": "Now add 3."}]]
RESPONSES = ["5.", "The answer is 5, I think."]


def test_round_trip_predictions_equal(tiny_rm, tmp_path):
    from rewards.model import AttributeRewardModel
    from rewards.scoring import RewardScorer

    model, tok = tiny_rm
    with torch.no_grad():
        model.head.bias.copy_(torch.arange(5.0))  # make the head non-trivial
    before = RewardScorer(model, tok).predict(PROMPTS, RESPONSES)
    save_model(model, tok, tmp_path / "rm")
    scorer = RewardScorer.load(tmp_path / "rm", device="cpu")
    assert scorer.attributes == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    assert torch.allclose(scorer.predict(PROMPTS, RESPONSES), before, atol=1e-6)
    again = AttributeRewardModel.from_pretrained(tmp_path / "rm")
    assert again.attributes == scorer.attributes
    assert (tmp_path / "rm" / "model.safetensors").exists()


def test_batching_and_padding_do_not_change_scores(tiny_rm):
    from rewards.scoring import RewardScorer

    model, tok = tiny_rm
    alone = torch.cat([RewardScorer(model, tok, batch_size=1).predict([p], [r]) for p, r in zip(PROMPTS, RESPONSES)])
    batched = RewardScorer(model, tok, batch_size=8).predict(PROMPTS, RESPONSES)
    assert torch.allclose(alone, batched, atol=1e-5)


def test_scalar_standardize_and_log_prob(tiny_rm):
    from rewards.beta import beta_attribute_log_prob
    from rewards.interface import RewardFunction, RMReward
    from rewards.scoring import RewardScorer, compute_reward_stats

    model, tok = tiny_rm
    scorer = RewardScorer(model, tok)
    pred = scorer.predict(PROMPTS, RESPONSES)
    w = torch.tensor([0.65, 0.8, 0.45, 0.0, 0.0])
    assert torch.allclose(scorer.scalar(PROMPTS, RESPONSES), pred @ w, atol=1e-6)
    fake = torch.tensor([[1.0, 2, 3, 0, 1], [3.0, 4, 4, 1, 2], [2.0, 0, 1, 2, 2]])
    scorer.stats = compute_reward_stats(fake, scorer.attributes)
    g = fake @ w
    std = scorer.scalar(PROMPTS, RESPONSES, standardize=True)
    assert torch.allclose(std, (pred @ w - g.mean()) / g.std(), atol=1e-5)
    # a custom vector standardises through the stored covariance
    v = [1.0, -1.0, 0.0, 0.5, 0.0]
    gv = fake @ torch.tensor(v)
    assert torch.allclose(scorer.scalar(PROMPTS, RESPONSES, v, standardize=True),
                          (pred @ torch.tensor(v) - gv.mean()) / gv.std(), atol=1e-5)
    lp = scorer.log_prob(PROMPTS, RESPONSES, {"helpfulness": 4, "verbosity": 2})
    want = beta_attribute_log_prob(pred[:, [0, 4]], torch.tensor([4, 2])).sum(-1)
    assert torch.allclose(lp, want)
    reward = RMReward(scorer, weights="goodness")
    assert isinstance(reward, RewardFunction)
    assert reward(PROMPTS, RESPONSES) == pytest.approx((pred @ w).tolist(), abs=1e-5)


def test_sequence_classification_checkpoint_loads(world, tmp_path):
    from transformers import AutoModelForSequenceClassification, LlamaConfig

    from align.models import load_tokenizer
    from rewards.scoring import RewardScorer

    tok = load_tokenizer(ModelSpec(path=str(world / "tokenizer")))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, pad_token_id=tok.pad_token_id, num_labels=2,
                      id2label={0: "helpfulness", 1: "verbosity"}, label2id={"helpfulness": 0, "verbosity": 1})
    torch.manual_seed(0)
    seqcls = AutoModelForSequenceClassification.from_config(cfg)
    seqcls.save_pretrained(tmp_path / "seqcls")
    tok.save_pretrained(tmp_path / "seqcls")
    scorer = RewardScorer.load(tmp_path / "seqcls", device="cpu")
    assert scorer.attributes == ["helpfulness", "verbosity"]
    from rewards.data import encode_response

    ids = torch.tensor([encode_response(tok, PROMPTS[0], RESPONSES[0], 1024)[0]])
    with torch.no_grad():
        want = seqcls(input_ids=ids).logits
    assert torch.allclose(scorer.predict(PROMPTS[:1], RESPONSES[:1]), want, atol=1e-5)


def test_lora_trains_head_and_saves_merged(world, tmp_path):
    from rewards.build import build_reward_model
    from rewards.scoring import RewardScorer

    spec = ModelSpec(tiny={"hidden_size": 32, "layers": 2, "heads": 2}, tokenizer=str(world / "tokenizer"),
                     lora=LoRASpec(r=4))
    model, tok = build_reward_model(spec, ["helpfulness"], seed=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("head" in n and "lora" not in n for n in trainable)
    assert not any("embed_tokens" in n for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()  # a non-zero adapter, so merging matters
    live = RewardScorer(model, tok).predict(PROMPTS, RESPONSES)
    save_model(model, tok, tmp_path / "lora_rm", merge_lora=True)
    config = json.loads((tmp_path / "lora_rm" / "config.json").read_text())
    assert config["model_type"] == "attribute_reward_model"
    loaded = RewardScorer.load(tmp_path / "lora_rm", device="cpu").predict(PROMPTS, RESPONSES)
    assert torch.allclose(live, loaded, atol=1e-4)


def test_rm_pick_is_the_oracle_score_of_the_sample_the_rm_ranks_first(world, tiny_rm):
    """headroom/rm_pick_helpfulness: per prompt, the oracle's helpfulness of the RM's top sample, averaged."""
    from align.data import flatten_messages
    from align.evaluation import _rm_pick
    from align.world.oracle import annotate
    from rewards.scoring import RewardScorer

    model, tok = tiny_rm
    scorer = RewardScorer(model, tok)
    by_prompt = {}  # single-turn world prompts with their rated responses
    for line in (world / "data" / "helpsteer_train.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "<extra_id_1>" not in row["prompt"]:
            by_prompt.setdefault(row["prompt"], []).append(row["response"])
    kept, expected = [], []
    for prompt, responses in by_prompt.items():  # per prompt: a better answer first, one the RM prefers second
        messages = [{"role": "user", "content": prompt}]
        h = [annotate(flatten_messages(messages), r)["helpfulness"] for r in responses]
        score = scorer.scalar([messages] * len(responses), responses, weights="goodness").tolist()
        pair = next(((i, j) for i in range(len(h)) for j in range(len(h)) if h[i] > h[j] and score[j] > score[i] + 1e-3), None)
        if pair is not None:
            kept.append((messages, [responses[pair[0]], responses[pair[1]]]))
            expected.append(h[pair[1]])  # neither the first sample nor the best one
        if len(kept) == 2:
            break
    assert len(kept) == 2
    helpful = [[annotate(flatten_messages(p), r)["helpfulness"] for r in rs] for p, rs in kept]
    got = _rm_pick(scorer, kept, helpful)["headroom/rm_pick_helpfulness"]
    assert got == pytest.approx(sum(expected) / len(expected))
    # an RM without the goodness attributes: no figure, no failure
    from rewards.build import build_reward_model

    spec = ModelSpec(tiny={"hidden_size": 32, "layers": 2, "heads": 2}, tokenizer=str(world / "tokenizer"))
    only_verbosity = RewardScorer(*build_reward_model(spec, ["verbosity"], seed=0))
    assert _rm_pick(only_verbosity, kept, helpful) == {}
