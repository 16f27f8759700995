"""Bad inputs found by trying the CLI as a new user would (issue 13): each exits 2 (recipe or
command), 3 (data), 4 (training) or 5 (run directory in use) with one message naming the file,
field or row, never a traceback, and nothing of an earlier result is damaged."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from align.cli import main
from tests.helpers import TINY

ROW = {"prompt": "What is 1 plus 2?", "response": "The answer is 3.", "helpfulness": 4, "correctness": 4,
       "coherence": 4, "complexity": 0, "verbosity": 1}


def _sft(data, tok, **train):
    return {"name": "sft", "kind": "sft", "model": {"tiny": dict(TINY), "tokenizer": str(tok)}, "data": str(data),
            "train": {"max_steps": 2, "batch_size": 2, "max_length": 64, **train}}


def _rm(data, tok, **fields):
    return {"name": "rm", "kind": "reward_model", "model": {"tiny": dict(TINY), "tokenizer": str(tok)},
            "data": str(data), "validation_fraction": 0.0,
            "train": {"max_steps": 2, "batch_size": 2, "max_length": 64, "save_every": 0}, **fields}


def _run(tmp_path, capsys, stages, *argv, run_dir=None, text=None):
    path = tmp_path / "recipe.yaml"
    recipe = {"run_dir": str(run_dir or tmp_path / "run"), "seed": 0, "stages": stages}
    path.write_text(text if text is not None else yaml.safe_dump(recipe, sort_keys=False))
    code = main(["run", str(path), *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n=8, **changes):
    out = []
    for i in range(n):
        row = {**ROW, "prompt": f"What is {i // 2} plus 2?", "response": f"The answer is {i}.", "helpfulness": i % 5,
               **changes}
        out.append({k: v for k, v in row.items() if v is not None})
    return out


# ---- recipe fields ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragment", [
    (["--set", "seed=-1"], "seed: Input should be greater than or equal to 0"),
    (["--set", "seed=4294967296"], "seed: Input should be less than or equal to 4294967295"),
    (["--set", "stages.sft.seed=-3"], "stages[0] (sft).seed"),
    (["--set", "stages.sft.train.adam_betas=[1.5, 0.9]"], "adam_betas: each beta must be in [0, 1): beta1=1.5"),
    (["--set", "stages.sft.train.epochs=.inf"], "train.epochs: Input should be a finite number"),
    (["--set", "stages.sft.train.lr=.nan"], "train.lr: Input should be a finite number"),
    (["--set", "run_dir="], "run_dir: must name a directory"),
])
def test_bad_recipe_values_exit_2(tmp_path, capsys, world_dir, argv, fragment):
    code, err = _run(tmp_path, capsys, [_sft(world_dir / "data" / "sft.jsonl", world_dir / "tokenizer")], *argv)
    assert code == 2 and fragment in err, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "sft").exists()


def test_run_dir_that_is_a_file(tmp_path, capsys, world_dir):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, err = _run(tmp_path, capsys, [_sft(world_dir / "data" / "sft.jsonl", world_dir / "tokenizer")],
                     run_dir=target)
    assert code == 2 and "exists and is not a directory" in err
    assert target.read_text() == "keep me"


def test_duplicate_yaml_key(tmp_path, capsys, world_dir):
    stage = yaml.safe_dump([_sft(world_dir / "data" / "sft.jsonl", world_dir / "tokenizer")])
    text = f"run_dir: {tmp_path / 'run'}\nseed: 0\nstages:\n" + "".join(f"  {line}\n" for line in stage.splitlines())
    text = text.replace("    train:\n", "    train: {lr: 0.5}\n    train:\n", 1)
    code, err = _run(tmp_path, capsys, [], text=text)
    assert code == 2 and "duplicate key 'train'" in err and "first at line" in err, err


def test_label_smoothing_needs_the_sigmoid_loss(tmp_path, capsys, world_dir):
    dpo = {"name": "dpo", "kind": "dpo", "model": {"tiny": dict(TINY), "tokenizer": str(world_dir / "tokenizer")},
           "pairs": {"source": "preference", "data": str(world_dir / "data" / "preference.jsonl")},
           "loss_type": "ipo", "label_smoothing": 0.1}
    code, err = _run(tmp_path, capsys, [dpo])
    assert code == 2 and "label_smoothing applies to loss_type sigmoid only" in err


# ---- data files --------------------------------------------------------------------------------
def test_non_utf8_data_is_found_before_any_stage_runs(tmp_path, capsys, world_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "Add 1 and 2.", "response": "3"}\n{"prompt": "caf\xe9", "response": "x"}\n')
    first = _sft(world_dir / "data" / "sft.jsonl", world_dir / "tokenizer")
    code, err = _run(tmp_path, capsys, [first, {**_rm(bad, world_dir / "tokenizer")}])
    assert code == 3 and "bad.jsonl line 2: not UTF-8" in err and "stages[1] (rm).data" in err, err
    assert not (tmp_path / "run" / "sft").exists()  # nothing ran


@pytest.mark.parametrize("content, fragment", [("", "has no rows"), ("\n\n", "has no rows"),
                                                ('{"a": 1}\n[1, 2]\n', "row 2")])
def test_empty_or_malformed_files_exit_3(tmp_path, capsys, world_dir, content, fragment):
    data = tmp_path / "d.jsonl"
    data.write_text(content)
    code, err = _run(tmp_path, capsys, [_sft(data, world_dir / "tokenizer")])
    assert code == 3 and "d.jsonl" in err and fragment in err, err


def test_a_directory_named_like_a_data_file(tmp_path, capsys, world_dir):
    (tmp_path / "d.jsonl").mkdir()
    code, err = _run(tmp_path, capsys, [_sft(tmp_path / "d.jsonl", world_dir / "tokenizer")])
    assert code == 3 and "d.jsonl" in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_data_file(tmp_path, capsys, world_dir):
    data = shutil.copy(world_dir / "data" / "sft.jsonl", tmp_path / "d.jsonl")
    os.chmod(data, 0)
    code, err = _run(tmp_path, capsys, [_sft(data, world_dir / "tokenizer")])
    assert code == 3 and "cannot read the file" in err


@pytest.mark.parametrize("prompt, fragment", [
    ("<extra_id_1>Assistant\nHello.\n<extra_id_1>User\nWhat is 1 plus 2?", "starts with an Assistant turn"),
    ("Hi.\n<extra_id_1>Bot\nHello.\n<extra_id_1>User\nWhat is 1 plus 2?", "'<extra_id_1>Bot'"),
    ("Hi.\n<extra_id_1>User\nWhat is 1 plus 2?", "both user turns"),
    ("Hi.\n<extra_id_1>Assistant\nHello.\n<extra_id_1>User\n  ", "last user turn (turn 3) is empty"),
])
def test_broken_turn_structure(tmp_path, capsys, world_dir, prompt, fragment):
    rows = _rows()
    rows[5]["prompt"] = prompt
    data = _jsonl(tmp_path / "hs.jsonl", rows)
    code, err = _run(tmp_path, capsys, [_rm(data, world_dir / "tokenizer")])
    assert code == 3 and "hs.jsonl row 6" in err and fragment in err, err


def test_attribute_column_missing_or_misspelt(tmp_path, capsys, world_dir):
    rows = [{("complexty" if k == "complexity" else k): v for k, v in r.items()} for r in _rows()]
    data = _jsonl(tmp_path / "hs.jsonl", rows)
    code, err = _run(tmp_path, capsys, [_rm(data, world_dir / "tokenizer")])
    assert code == 3 and "no row has a label for complexity" in err and "'complexty' looks like 'complexity'" in err


def test_absent_attributes_train_without_them_and_report_no_metric(tmp_path, capsys, world_dir):
    rows = [{k: v for k, v in r.items() if k != "verbosity"} for r in _rows(16)]
    data = _jsonl(tmp_path / "hs.jsonl", rows)
    stage = _rm(data, world_dir / "tokenizer", validation_fraction=0.25, absent_attributes=["verbosity"])
    code, err = _run(tmp_path, capsys, [stage])
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "rm" / "metrics.json").read_text())
    assert "eval/pearson/helpfulness" in metrics and not any("verbosity" in k for k in metrics)


def test_tied_ratings_give_no_dpo_pairs(tmp_path, capsys, world_dir):
    data = _jsonl(tmp_path / "tied.jsonl", _rows(helpfulness=2))
    dpo = {"name": "dpo", "kind": "dpo", "model": {"tiny": dict(TINY), "tokenizer": str(world_dir / "tokenizer")},
           "pairs": {"source": "ratings", "data": str(data)}, "train": {"max_steps": 1, "batch_size": 2}}
    code, err = _run(tmp_path, capsys, [dpo])
    assert code == 3 and "tied.jsonl: no preference pairs from ratings" in err, err


def test_bad_eval_pairs_are_found_before_training(tmp_path, capsys, world_dir):
    pairs = _jsonl(tmp_path / "pairs.jsonl", [{"prompt": "What is 1 plus 2?", "response_1": "3"}])
    stage = _rm(world_dir / "data" / "helpsteer_train.jsonl", world_dir / "tokenizer", eval_pairs=str(pairs))
    code, err = _run(tmp_path, capsys, [stage])
    assert code == 3 and "pairs.jsonl row 1" in err, err
    assert not list((tmp_path / "run").rglob("checkpoint-*"))  # no training step ran


def test_tokenizer_without_chat_template(tmp_path, capsys, world_dir):
    tok = shutil.copytree(world_dir / "tokenizer", tmp_path / "tok")
    config = json.loads((tok / "tokenizer_config.json").read_text())
    template = config.pop("chat_template", None) or (tok / "chat_template.jinja").read_text()
    (tok / "chat_template.jinja").unlink(missing_ok=True)
    (tok / "tokenizer_config.json").write_text(json.dumps(config))
    stage = _sft(world_dir / "data" / "sft.jsonl", tok)
    code, err = _run(tmp_path, capsys, [stage])
    assert code == 2 and "has no chat template" in err and "chat_template" in err, err
    (tmp_path / "t.jinja").write_text(template)
    stage["model"]["chat_template"] = str(tmp_path / "t.jinja")  # the fix the message names
    code, err = _run(tmp_path, capsys, [stage])
    assert code == 0, err


# ---- diverging training ------------------------------------------------------------------------
def test_non_finite_metrics_fail_the_stage_and_keep_the_previous_result(tmp_path, capsys, world_dir):
    from typing import Literal

    from align.stages import STAGE_KINDS
    from align.stages.base import Stage, StageConfig, register_stage

    class NaNConfig(StageConfig):
        kind: Literal["nan_metric_test"] = "nan_metric_test"
        value: float = 1.0

    class NaNStage(Stage):
        kind = "nan_metric_test"
        Config = NaNConfig

        def run(self, config, ctx):
            (ctx.work_dir / "result.txt").write_text(str(config.value))
            return {"train/loss_final": config.value * float("inf") if config.value > 1 else config.value}

    register_stage(NaNStage)
    try:
        code, _ = _run(tmp_path, capsys, [{"name": "s", "kind": "nan_metric_test"}])
        assert code == 0
        code, err = _run(tmp_path, capsys, [{"name": "s", "kind": "nan_metric_test", "value": 2.0}])
        assert code == 4 and "non-finite metrics: train/loss_final=inf" in err, err
        assert (tmp_path / "run" / "s" / "result.txt").read_text() == "1.0"  # the earlier result stands
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["stages"][0]["status"] == "failed"
    finally:
        STAGE_KINDS.pop("nan_metric_test", None)


# ---- one run per run directory -------------------------------------------------------------------
def test_second_run_on_a_locked_run_dir_stops_and_a_killed_holder_leaves_no_lock(tmp_path, capsys, world_dir):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from align.run_lock import RunDirLock; RunDirLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(120)"), str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        stages = [_sft(world_dir / "data" / "sft.jsonl", world_dir / "tokenizer")]
        code, err = _run(tmp_path, capsys, stages)
        assert code == 5 and f"PID {holder.pid}" in err and "in use by another align run" in err, err
        assert not (run_dir / "manifest.json").exists() and not (run_dir / "sft").exists()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        time.sleep(0.1)
        code, err = _run(tmp_path, capsys, stages)
        assert code == 0, err
    finally:
        holder.kill()
        holder.wait()


# ---- commands ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, world_dir):
    """A tiny SFT model and reward model, trained for two steps."""
    root = tmp_path_factory.mktemp("trained")
    tok = world_dir / "tokenizer"
    recipe = {"run_dir": str(root / "run"), "seed": 0, "stages": [
        _sft(world_dir / "data" / "sft.jsonl", tok),
        {**_rm(world_dir / "data" / "helpsteer_train.jsonl", tok), "model": {"from": "sft"}}]}
    (root / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["run", str(root / "r.yaml")]) == 0
    return root / "run"


@pytest.mark.parametrize("argv, code, fragment", [
    (["score", "{rm}", "{val}", "--target", "helpfulness=9"], 2, "helpfulness=9 is outside the label scale 0..4"),
    (["score", "{rm}", "{val}", "--target", "helpfulnes=3"], 2, "'helpfulnes' is not an attribute"),
    (["score", "{run}/nope", "{val}"], 2, "nope: no such file or directory"),
    (["score", "{rm}", "{bad}"], 3, "bad.jsonl line 1: not UTF-8"),
    (["generate", "--model", "{sft}", "--prompt", "Add 1 and 2.", "--attributes", "helpfulness:9"], 2,
     "--attributes: attribute 'helpfulness' must be 0..4, got 9"),
])
def test_command_errors(trained, world_dir, tmp_path, capsys, argv, code, fragment):
    (tmp_path / "bad.jsonl").write_bytes(b'{"prompt": "Add 1 and 2.", "response": "\xff"}\n')
    paths = {"rm": trained / "rm" / "model", "sft": trained / "sft" / "model", "run": trained,
             "val": world_dir / "data" / "helpsteer_validation.jsonl", "bad": tmp_path / "bad.jsonl"}
    assert main([a.format(**paths) for a in argv]) == code
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 3, f"the message is spread over lines: {err}"


def test_merge_keys_may_override_but_plain_duplicates_may_not():
    from align.yaml_strict import safe_load_unique

    assert safe_load_unique("b: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")["c"] == {"x": 1, "y": 3}
    with pytest.raises(yaml.YAMLError, match="duplicate key 'y'"):
        safe_load_unique("c:\n  y: 1\n  y: 2\n")
