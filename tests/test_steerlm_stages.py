"""SteerLM 1.0 -> 2.0 stages end to end on a tiny world (seconds, not minutes)."""
import json

import pytest
import torch

from align.chat import IGNORE_INDEX
from align.steerlm.labels import attribute_prefix, check_marker
from align.steerlm.sequences import tokenize_response


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoTokenizer

    from align.config.model_spec import TinyModelSpec
    from align.world.generator import generate_world
    from align.world.tiny_model import build_tiny_model
    from rewards.model import AttributeRewardModel

    root = tmp_path_factory.mktemp("steer")
    generate_world(root / "w", prompts=200, test_prompts=20)
    tok = AutoTokenizer.from_pretrained(str(root / "w" / "tokenizer"))
    lm = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    rm = AttributeRewardModel.from_causal_lm(lm)  # an untrained head is enough to exercise the plumbing
    rm.save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    return root, tok


def test_prefix_is_masked_and_marker_intact(world):
    _, tok = world
    check_marker(tok, "<extra_id_2>")
    msgs = [{"role": "user", "content": "Add 2 and 3."}]
    prefix = attribute_prefix({"helpfulness": 4, "verbosity": 1})
    ex = tokenize_response(tok, msgs, "It is 5.", prefix)
    learned = tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX])
    assert learned == "It is 5.<|end|>"
    assert prefix in tok.decode(ex.input_ids)
    # generation sees exactly the same context tokens as training
    from align.chat import render
    ctx_ids = tok(render(tok, msgs, add_generation_prompt=True) + prefix, add_special_tokens=False)["input_ids"]
    assert ex.input_ids[: len(ctx_ids)] == ctx_ids
    assert ex.labels[len(ctx_ids) - 1] == IGNORE_INDEX and ex.labels[len(ctx_ids)] != IGNORE_INDEX


def test_trainer_moves_mass_toward_high_weight_samples(world):
    from align.config.base import TrainConfig
    from align.config.model_spec import TinyModelSpec
    from align.steerlm.sequences import sequence_log_probs
    from align.trainers.steerlm2 import SampleGroup, SteerLM2Trainer
    from align.world.tiny_model import build_tiny_model

    root, tok = world
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=1)
    msgs = [{"role": "user", "content": "Add 2 and 3."}]
    responses = ["It is 5.", "It is 7.", "Maybe 9.", "5."]
    prefix = attribute_prefix({"correctness": 4})
    exs = [tokenize_response(tok, msgs, r, prefix) for r in responses]
    log_q = sequence_log_probs(model, tok, exs).tolist()
    group = SampleGroup(exs, [0.0, -6.0, -6.0, -1.0], [0.0] * 4, log_q)  # the target favours 'It is 5.'
    trainer = SteerLM2Trainer(model, tok, TrainConfig(lr=3e-3, max_steps=15, batch_size=2, save_every=0),
                              root / "t", seed=0)
    out = trainer.train([group, group])
    after = sequence_log_probs(trainer.unwrapped_model(), tok, exs)
    gain = after - torch.tensor(log_q)
    assert gain[0] > gain[1] and gain[0] > gain[2]
    assert out["train/kl_w_b_final"] < trainer.history[0]["train/kl_w_b"]


def test_recipe_steerlm1_then_steerlm2(world, tmp_path):
    import yaml

    from align.recipe import load_recipe
    from align.runner import Runner

    root, _ = world
    w = root / "w"
    steer = {"prompts": str(w / "data/prompts_test.jsonl"), "max_prompts": 4, "max_new_tokens": 8,
             "targets": [{"verbosity": 1}, {"verbosity": 3}]}
    recipe = {
        "run_dir": str(tmp_path / "run"), "seed": 0,
        "stages": [
            _sft_stage(w),
            {"name": "steerlm1", "kind": "steerlm_sft", "model": "sft", "data": str(w / "data/helpsteer_train.jsonl"),
             "train": {"max_steps": 3, "lr": 1e-3, "save_every": 0}, "steerability": steer},
            {"name": "steerlm2", "kind": "steerlm2", "policy": "steerlm1", "reference": "sft",
             "reward_model": str(root / "rm"), "prompts": str(w / "data/prompts_train.jsonl"), "max_prompts": 3,
             "samples_per_prompt": 3, "max_new_tokens": 8, "iterations": 2,
             "target_distribution": [{"attributes": {"verbosity": 1}}, {"attributes": {"verbosity": 3}, "weight": 2}],
             "train": {"epochs": 1, "lr": 1e-3, "batch_size": 2, "save_every": 0}, "steerability": steer},
        ],
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    Runner(load_recipe(str(path), [])).run()
    m = json.loads((tmp_path / "run/steerlm2/metrics.json").read_text())
    for k in ("steer/mae_mean/iter0", "steer/mae_mean/iter1", "steer/mae_mean/iter2", "steer/mae/verbosity/iter2",
              "steer_rm/mae_mean/iter2", "steerlm2/kl_w_b/iter1", "steerlm2/ess/iter2", "steerlm2/rm/verbosity/iter1"):
        assert k in m, k
    assert 1.0 <= m["steerlm2/ess/iter1"] <= 3.0
    rows = [json.loads(x) for x in (tmp_path / "run/steerlm2/iterations/iter1/samples.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and all(set(r) >= {"log_p_attr", "log_p_ref", "log_q_prop", "target"} for r in rows)
    assert all(r["log_q_prop"] < 0 and r["log_p_attr"] <= 0 for r in rows)
    assert (tmp_path / "run/steerlm2/model/config.json").exists()
    # resume: finished iterations are reused, not redone (their metrics come back unchanged)
    import shutil

    from align.context import StageContext
    from align.stages import STAGE_KINDS

    recipe_obj = load_recipe(str(path), [])
    cfgs = {s.name: s for s in recipe_obj.stages}
    work = tmp_path / "resume"
    shutil.copytree(tmp_path / "run/steerlm2/iterations", work / "iterations")
    mfile = work / "iterations/iter2/metrics.json"
    mfile.write_text(json.dumps({**json.loads(mfile.read_text()), "steerlm2/ess/iter2": 123.0}))
    ctx = StageContext(name="steerlm2", run_dir=tmp_path / "run", work_dir=work, seed=0, stages=cfgs)
    again = STAGE_KINDS["steerlm2"]().run(cfgs["steerlm2"], ctx)
    assert again["steerlm2/ess/iter2"] == 123.0 and again["steerlm2/ess/iter1"] == m["steerlm2/ess/iter1"]


def test_sampled_steerability_counts_every_sample(world, monkeypatch):
    """temperature > 0 scores `samples` answers per (target, prompt); greedy scores one."""
    from align.config.model_spec import TinyModelSpec
    from align.data import load_prompts
    from align.steerlm import steerability
    from align.world.tiny_model import build_tiny_model

    root, tok = world
    model = build_tiny_model(TinyModelSpec(hidden_size=32, layers=2, heads=2), tok, seed=0)
    prompts = load_prompts(str(root / "w/data/prompts_test.jsonl"))[:3]
    targets = [{"verbosity": 0}, {"verbosity": 4}]
    scored = []
    real = steerability.absolute_errors
    monkeypatch.setattr(steerability, "absolute_errors", lambda req, got: scored.append(len(req)) or real(req, got))
    greedy = steerability.measure_steerability(model, tok, prompts, targets, max_new_tokens=6)
    sampled = steerability.measure_steerability(model, tok, prompts, targets, max_new_tokens=6,
                                                temperature=1.0, top_p=0.9, samples=4)
    assert scored == [2 * 3, 2 * 3 * 4]
    assert set(greedy) == set(sampled) and 0.0 <= sampled["steer/mae_mean"] <= 4.0


def test_recipe_steerlm2_on_oracle_labels_with_oracle_eval(world, tmp_path):
    """The gold ablation: P(a|x,y) from the oracle (no reward model at all), with the oracle eval
    at eval_target, headroom and gains, and each iteration's model as an output."""
    import yaml

    from align.recipe import load_recipe
    from align.runner import Runner

    root, _ = world
    w = root / "w"
    evalc = {"prompts": str(w / "data/prompts_test.jsonl"), "max_prompts": 4, "max_new_tokens": 8, "best_of": 2}
    recipe = {
        "run_dir": str(tmp_path / "run"), "seed": 0,
        "stages": [
            _sft_stage(w),
            {"name": "steerlm2", "kind": "steerlm2", "policy": "sft", "reference": "sft", "attribute_source": "oracle",
             "prompts": str(w / "data/prompts_train.jsonl"), "max_prompts": 3, "samples_per_prompt": 2,
             "max_new_tokens": 8, "iterations": 2, "target": {"helpfulness": 4, "verbosity": 1},
             "eval_target": {"helpfulness": 4, "verbosity": 1}, "oracle_eval": evalc,
             "train": {"epochs": 1, "lr": 1e-3, "batch_size": 2, "save_every": 0}},
        ],
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    Runner(load_recipe(str(path), [])).run()
    m = json.loads((tmp_path / "run/steerlm2/metrics.json").read_text())
    assert m["reward/source"] == "oracle"
    for k in ("oracle/helpfulness/before", "oracle/helpfulness/iter1", "oracle/helpfulness/after",
              "headroom/best_of_n_helpfulness", "sampled/helpfulness/after", "gain/oracle_helpfulness"):
        assert k in m, k
    assert m["oracle/helpfulness/after"] == m["oracle/helpfulness/iter2"]
    rows = [json.loads(x) for x in (tmp_path / "run/steerlm2/iterations/iter1/samples.jsonl").read_text().splitlines()]
    from align.world.oracle import annotate
    from align.data import flatten_messages
    for r in rows:  # the recorded labels are the oracle's own
        assert r["rm"]["helpfulness"] == annotate(flatten_messages(r["messages"]), r["response"])["helpfulness"]
    assert (tmp_path / "run/steerlm2/iterations/iter1/model/config.json").exists()
    with pytest.raises(ValueError, match="attribute_source reward_model needs reward_model"):
        from align.stages.steerlm2 import SteerLM2Config

        SteerLM2Config(name="s", policy="p", reference="r", prompts="x")


def _sft_stage(w) -> dict:
    """A 3-step SFT stage on the tiny world `w` (the policy and reference of the recipe tests)."""
    return {"name": "sft", "kind": "sft", "model": {"tiny": {"hidden_size": 32, "layers": 2, "heads": 2},
                                                    "tokenizer": str(w / "tokenizer")},
            "data": str(w / "data/sft.jsonl"), "train": {"max_steps": 3, "lr": 1e-3, "save_every": 0}}
