"""Generator: deterministic, right schemas, spread labels, disjoint splits, usable tokenizer."""
import json
import random
import time

import pytest
from transformers import AutoTokenizer

from align.attributes import ATTRIBUTES
from align.world import tasks as T
from align.world.generator import generate_world
from align.world.oracle import annotate

NAMES = ("helpsteer_train", "helpsteer_validation", "preference", "sft", "prompts_train",
         "prompts_test", "world_info", "tokenizer")
FILES = ("data/helpsteer_train.jsonl", "data/helpsteer_validation.jsonl", "data/preference.jsonl",
         "data/sft.jsonl", "data/prompts_train.jsonl", "data/prompts_test.jsonl", "world.json",
         "tokenizer/tokenizer.json")


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world0")
    return out, generate_world(out, prompts=400, seed=0, test_prompts=50)


def test_outputs_and_determinism(world, tmp_path):
    out, paths = world
    assert set(paths) == set(NAMES) and all(p.exists() for p in paths.values())
    same = generate_world(tmp_path / "a", prompts=400, seed=0, test_prompts=50)
    other = generate_world(tmp_path / "b", prompts=400, seed=1, test_prompts=50)
    for f in FILES:
        assert (out / f).read_bytes() == (tmp_path / "a" / f).read_bytes(), f
    assert (out / FILES[0]).read_bytes() != (tmp_path / "b" / FILES[0]).read_bytes()
    assert same.keys() == other.keys()


def test_helpsteer_schema_labels_and_spread(world):
    _, paths = world
    train = read(paths["helpsteer_train"])
    val = read(paths["helpsteer_validation"])
    assert len(train) == 2 * 380 and len(val) == 2 * 20
    for rows in (train, val):
        for r1, r2 in zip(rows[::2], rows[1::2]):
            assert r1["prompt"] == r2["prompt"]
            for r in (r1, r2):
                assert list(r) == ["prompt", "response", *ATTRIBUTES]
                assert all(isinstance(r[a], int) and 0 <= r[a] <= 4 for a in ATTRIBUTES)
                assert annotate(r["prompt"], r["response"]) == {a: r[a] for a in ATTRIBUTES}
    for a in ATTRIBUTES:
        assert len({r[a] for r in train}) >= 3, a
    info = json.loads(paths["world_info"].read_text())
    assert info["seed"] == 0 and sum(info["histograms"]["helpfulness"]) == len(train)
    multi = sum(T.USER_SEP in r["prompt"] for r in train[::2]) / 380
    assert 0.15 < multi < 0.45


def test_splits_disjoint_and_prompt_files(world):
    _, paths = world
    train = {r["prompt"] for r in read(paths["helpsteer_train"])}
    val = {r["prompt"] for r in read(paths["helpsteer_validation"])}
    test = [r["prompt"] for r in read(paths["prompts_test"])]
    train_order = list(dict.fromkeys(r["prompt"] for r in read(paths["helpsteer_train"])))
    assert [r["prompt"] for r in read(paths["prompts_train"])] == train_order
    assert len(test) == len(set(test)) == 50
    assert not (train & val) and not (train & set(test)) and not (val & set(test))
    assert all(T.parse_prompt(p) is not None for p in train | val | set(test))


def test_preference_and_sft(world):
    _, paths = world
    pairs = read(paths["preference"])
    keys = ["prompt", "response_1", "response_2", "preference_strength", "preference_statement",
            "preference_elaboration", "split"]
    assert len(pairs) == 400
    for p in pairs:
        assert list(p) == keys and p["split"] in ("train", "validation")
        assert isinstance(p["preference_strength"], int) and -3 <= p["preference_strength"] <= 3
        h1 = annotate(p["prompt"], p["response_1"])["helpfulness"]
        h2 = annotate(p["prompt"], p["response_2"])["helpfulness"]
        if h1 != h2:
            assert (p["preference_strength"] < 0) == (h1 > h2)
    assert len({p["preference_strength"] for p in pairs}) >= 5
    val = {r["prompt"] for r in read(paths["helpsteer_validation"])}
    assert {p["prompt"] for p in pairs if p["split"] == "validation"} == val

    sft = read(paths["sft"])
    assert len(sft) == 2 * 380
    for row in sft:
        roles = [m["role"] for m in row["messages"]]
        assert roles[-1] == "assistant" and roles == ["user", "assistant"] * (len(roles) // 2)
    assert any(len(r["messages"]) == 4 for r in sft)


def test_tokenizer_roundtrip_template_and_eos(world):
    _, paths = world
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>" and tok.bos_token == "<|bos|>"
    assert "<|eos|>" in tok.all_special_tokens
    sample = read(paths["sft"])[0]["messages"][-1]["content"]
    for text in ("What is 23 plus 41?", "Hello wörld\n\t 12 <|end|> zxq", sample):
        assert tok.decode(tok(text)["input_ids"]) == text
    for row in read(paths["sft"])[:50]:
        msgs = row["messages"]
        full = tok.apply_chat_template(msgs, tokenize=True)["input_ids"]
        head = tok.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True)["input_ids"]
        assert full[: len(head)] == head and full[-1] == tok.eos_token_id
        assert tok.bos_token_id not in full
        rendered = tok.apply_chat_template(msgs, tokenize=False)
        assert rendered.endswith(msgs[-1]["content"] + "<|end|>")


def test_random_tokens_score_low(world):
    _, paths = world
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    rng = random.Random(0)
    prompts = [r["prompt"] for r in read(paths["prompts_test"])]
    for p in prompts:
        text = tok.decode([rng.randrange(len(tok)) for _ in range(rng.randint(3, 40))],
                          skip_special_tokens=True)
        assert annotate(p, text)["helpfulness"] <= 1, text


def test_default_size_is_fast(tmp_path):
    start = time.time()
    paths = generate_world(tmp_path, seed=3)
    assert time.time() - start < 10
    assert len(read(paths["prompts_train"])) == 1900


def _last_kind(prompt: str) -> str:
    users = [m["content"] for m in T.split_turns(prompt) if m["role"] == "user"]
    task = T.parse_turn(users[-1])
    return task.kind if task else "followup"


def test_test_prompts_are_distributed_like_train_prompts(tmp_path):
    """A large world exhausts the small task kinds (add, larger); the test set must still look
    like the train set instead of being whatever kind was left over (once: 78% sort)."""
    generate_world(tmp_path, prompts=2000, seed=3, test_prompts=300)
    share = {}
    for name in ("prompts_train", "prompts_test"):
        kinds = [_last_kind(r["prompt"]) for r in read(tmp_path / f"data/{name}.jsonl")]
        share[name] = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
    for kind, train_share in share["prompts_train"].items():
        assert abs(share["prompts_test"].get(kind, 0.0) - train_share) < 0.08, (kind, share)


def test_task_kinds_are_balanced_while_distinct_prompts_last(tmp_path):
    generate_world(tmp_path, prompts=300, seed=0, test_prompts=10, multi_turn_fraction=0.0)
    kinds = [_last_kind(r["prompt"]) for r in read(tmp_path / "data/prompts_train.jsonl")]
    for kind in T.TASK_KINDS:
        assert 0.07 < kinds.count(kind) / len(kinds) < 0.22, (kind, kinds.count(kind))


def test_pairs_per_prompt_disjoint_and_rows_unchanged(tmp_path):
    one = generate_world(tmp_path / "one", prompts=40, seed=3, test_prompts=5, responses_per_prompt=6)
    three = generate_world(tmp_path / "three", prompts=40, seed=3, test_prompts=5, responses_per_prompt=6,
                           pairs_per_prompt=3)
    pairs = read(three["preference"])
    assert len(pairs) == 3 * 40 and read(one["preference"]) == pairs[::3]
    rows = read(three["helpsteer_train"]) + read(three["helpsteer_validation"])
    for k in range(40):  # pair j of a prompt holds its responses 2j and 2j+1
        responses = [r["response"] for r in rows if r["prompt"] == pairs[3 * k]["prompt"]]
        assert [(p["response_1"], p["response_2"]) for p in pairs[3 * k: 3 * k + 3]] == \
            list(zip(responses[::2], responses[1::2]))
    # more pairs change neither the rated rows nor the tokenizer
    for name in ("helpsteer_train", "helpsteer_validation", "sft"):
        assert one[name].read_bytes() == three[name].read_bytes()
    assert (one["tokenizer"] / "tokenizer.json").read_bytes() == (three["tokenizer"] / "tokenizer.json").read_bytes()
    with pytest.raises(ValueError, match="pairs_per_prompt"):
        generate_world(tmp_path / "bad", prompts=40, seed=3, test_prompts=5, responses_per_prompt=6,
                       pairs_per_prompt=4)


def test_world_stage_rejects_more_pairs_than_responses_allow():
    from pydantic import ValidationError

    from align.stages.world import WorldConfig

    assert WorldConfig(name="w", responses_per_prompt=32, pairs_per_prompt=16).pairs_per_prompt == 16
    with pytest.raises(ValidationError, match=r"pairs_per_prompt \(3\).*responses_per_prompt // 2 = 2"):
        WorldConfig(name="w", responses_per_prompt=5, pairs_per_prompt=3)
