"""Issue 15: a user's own HelpSteer2 file through the README's recipe (tokenizer, SFT, RM,
SteerLM 1.0, DPO, a plugin trainer), plugin trainers from recipes (SimPO, GRPO, RLOO), and
the bad inputs of each stopping before any compute with exit 2 or 3."""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml

from align.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOPICS = ["photosynthesis", "the French revolution", "binary search", "tides", "vaccines", "compound interest",
          "volcanoes", "the water cycle", "recursion", "inflation", "glaciers", "prime numbers"]


def readme_recipe() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if "kind: tokenizer" in b and "trainer: examples/simpo.py" in b]
    assert len(found) == 1, "README must hold exactly one own-data recipe (tokenizer stage + plugin trainer)"
    return found[0]


def write_helpsteer(path: Path, n_prompts: int, seed: int) -> None:
    """English HelpSteer2 rows the project never generated: two rated answers per prompt, one multi-turn in three."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        t = rng.choice(TOPICS)
        prompt = (f"Explain {t} in simple terms." if i % 3 else
                  f"What is {t}?\n<extra_id_1>Assistant\nIt is a topic.\n<extra_id_1>User\nTell me more about {t}.")
        for good in (True, False):
            response = (f"{t.capitalize()} is an important idea; here is a clear example of {t}." if good
                        else f"I do not know much about {t}.")
            rows.append({"prompt": prompt, "response": response, "helpfulness": 4 if good else rng.randint(0, 2),
                         "correctness": 4 if good else 2, "coherence": 4 if good else 3,
                         "complexity": rng.randint(0, 2), "verbosity": 2 if good else 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A user's project directory: data/, examples/simpo.py and the README's recipe, as the README says."""
    (tmp_path / "data").mkdir()
    write_helpsteer(tmp_path / "data" / "train.jsonl", 60, seed=1)
    write_helpsteer(tmp_path / "data" / "validation.jsonl", 10, seed=2)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "own_data.yaml").write_text(readme_recipe())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_simpo_block_is_the_example_file():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert (ROOT / "examples" / "simpo.py").read_text() in blocks


def test_readme_own_data_recipe_runs_as_printed(user_dir, capsys):
    assert main(["run", "own_data.yaml"]) == 0
    run = user_dir / "runs" / "own_data"
    tok = json.loads((run / "tok" / "metrics.json").read_text())
    assert 300 < tok["tokenizer/vocab_size"] <= 2048
    sft = json.loads((run / "sft" / "metrics.json").read_text())
    assert sft["data/rows"] == 60  # min_attributes kept the helpfulness-4 answer of each prompt
    rm = json.loads((run / "rm" / "metrics.json").read_text())
    assert "eval/pearson/helpfulness" in rm or any(k.startswith("eval/") for k in rm)
    simpo = json.loads((run / "simpo" / "metrics.json").read_text())
    assert simpo["train/steps"] > 0 and "train/rewards/accuracy_final" in simpo  # SimPO's own metric
    assert "rewards/margin" not in " ".join(simpo)  # not the built-in DPO loss
    cfg = yaml.safe_load((run / "simpo" / "config.yaml").read_text())
    assert cfg["trainer"] == "examples/simpo.py:SimPOTrainer" and cfg["trainer_options"] == {"gamma": 0.5}
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(run / "steerlm" / "model")


def test_plugin_options_are_used(user_dir, capsys):
    """gamma reaches the loss: a larger target margin gives a larger first loss on the same pairs."""
    losses = []
    for gamma in (0.0, 5.0):
        assert main(["run", "own_data.yaml", "--set", f"run_dir=runs/g{gamma}", "--set",
                     f"stages.simpo.trainer_options.gamma={gamma}", "--set", "stages.simpo.train.max_steps=1"]) == 0
        losses.append(json.loads((user_dir / f"runs/g{gamma}/simpo/metrics.json").read_text())["train/loss_first"])
    assert losses[1] > 10 * losses[0] and losses[1] > 0.3, losses  # -log sigmoid(x - 5) >> -log sigmoid(x)


@pytest.mark.parametrize("setting, code, words", [
    ("stages.simpo.trainer=examples/missing.py:SimPOTrainer", 2, ["(simpo).trainer", "file not found"]),
    ("stages.simpo.trainer=examples/broken.py:SimPOTrainer", 2, ["(simpo).trainer", "broken.py", "SyntaxError"]),
    ("stages.simpo.trainer=no_such_package.mod:Trainer", 2, ["(simpo).trainer", "no_such_package"]),
    ("stages.simpo.trainer=align.trainers.sft:SFTTrainer", 2, ["(simpo).trainer", "not a subclass",
                                                              "DPOTrainer"]),
    ("stages.simpo.trainer=examples/simpo.py:NoSuchClass", 2, ["(simpo).trainer", "NoSuchClass"]),
    ("stages.simpo.trainer_options.gamma=large", 2, ["(simpo).trainer_options.gamma", "SimPOTrainer",
                                                    "valid number"]),
    ("stages.simpo.trainer_options.gamma=-1", 2, ["(simpo).trainer_options.gamma", "greater than or equal"]),
    ("stages.simpo.trainer_options.gama=1", 2, ["(simpo).trainer_options.gama", "Extra inputs"]),
    ("stages.dpo.trainer_options.gamma=1", 2, ["(dpo).trainer_options", "without `trainer`"]),
    ("stages.tok.data=[data/empty.jsonl]", 3, ["(tok).data[0]", "empty.jsonl", "no text"]),
    ("stages.tok.data=[data/blob.txt]", 3, ["(tok).data[0]", "blob.txt", "not UTF-8"]),
    ("stages.tok.data=[data/blob.bin]", 3, ["(tok).data[0]", "blob.bin", "unsupported file type"]),
    ("stages.sft.min_attributes.helpfulness=9", 2, ["(sft).min_attributes", "0..4"]),
])
def test_bad_plugin_and_tokenizer_inputs_stop_before_compute(user_dir, capsys, setting, code, words):
    (user_dir / "examples" / "broken.py").write_text("def oops(:\n")
    (user_dir / "data" / "empty.jsonl").write_text("")
    (user_dir / "data" / "blob.txt").write_bytes(b"\x00\xff\xfe binary \x89PNG")
    (user_dir / "data" / "blob.bin").write_bytes(b"\x00\x01\x02")
    assert main(["run", "own_data.yaml", "--set", setting]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert not (user_dir / "runs" / "own_data" / "tok").exists()  # nothing ran


def test_kinds_shows_a_plugin_trainers_options(user_dir, capsys):
    assert main(["kinds", "dpo", "--trainer", "examples/simpo.py:SimPOTrainer"]) == 0
    out = capsys.readouterr().out
    assert "trainer_options.gamma" in out and "Target reward margin" in out
    assert main(["kinds", "ppo", "--trainer", "align.trainers.grpo:GRPOTrainer"]) == 0
    assert "trainer_options.group_size" in capsys.readouterr().out
    assert main(["kinds", "ppo", "--trainer", "align.trainers.sft:SFTTrainer"]) == 2


def test_no_user_code_is_imported_unless_a_recipe_names_it(user_dir, capsys):
    import subprocess
    import sys

    recipe = yaml.safe_load(readme_recipe())
    recipe["stages"] = [s for s in recipe["stages"] if s["name"] != "simpo"]
    Path("plain.yaml").write_text(yaml.safe_dump(recipe))
    code = ("import sys; from align.cli import main; rc = main(['run', 'plain.yaml', '--dry-run']); "
            "print(rc, [m for m in sys.modules if m.startswith('align_plugin') or m == 'examples'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []", out


@pytest.mark.parametrize("trainer", ["align.trainers.grpo:GRPOTrainer", "align.trainers.rloo:RLOOTrainer"])
def test_group_rl_runs_from_a_recipe(tmp_path, capsys, trainer):
    from tests.helpers import TINY

    recipe = {"run_dir": str(tmp_path / "run"), "seed": 0, "stages": [
        {"name": "world", "kind": "world", "prompts": 60, "test_prompts": 8},
        {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": "world.tokenizer"},
         "data": "world.sft", "train": {"max_steps": 4, "batch_size": 8, "max_length": 128}},
        {"name": "rl", "kind": "ppo", "model": {"from": "sft"}, "prompts": "world.prompts_train",
         "reward": {"oracle": "goodness"}, "trainer": trainer, "trainer_options": {"group_size": 4},
         "steps": 2, "rollout_batch": 8, "minibatch": 4, "max_new_tokens": 12, "eval_samples": 0},
    ]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    m = json.loads((tmp_path / "run" / "rl" / "metrics.json").read_text())
    assert m["ppo/steps"] == 2 and "ppo/policy_loss_final" in m and "ppo/value_loss_final" not in m
    assert m["reward/source"] == "oracle:goodness"
    # a rollout batch that does not hold whole groups is a recipe error
    assert main(["run", str(path), "--set", "stages.rl.rollout_batch=6", "--set", "stages.rl.minibatch=3"]) == 2
    assert "multiple of group_size 4" in capsys.readouterr().err
