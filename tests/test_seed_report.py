"""Seed sweeps: --seeds parsing, the aggregation math, inversions, and the report on synthetic runs (no training)."""
import json
import statistics

import pytest
import yaml

from align.cli import main
from evals.seed_stats import Aggregate, aggregate, ascending, inversions, overlap
from tests.helpers import sft_stage, world_stage, write_recipe

# ---- aggregation math -----------------------------------------------------------------------------


def test_aggregate_t_interval_matches_scipy():
    from scipy import stats

    xs = [7.1, 7.5, 7.3, 6.9]
    a = aggregate(xs)
    assert a.n == 4 and a.mean == pytest.approx(statistics.mean(xs)) and a.sd == pytest.approx(statistics.stdev(xs))
    low, high = stats.t.interval(0.95, len(xs) - 1, loc=statistics.mean(xs), scale=stats.sem(xs))
    assert (a.low, a.high) == (pytest.approx(low), pytest.approx(high))
    assert a.to_dict()["high"] == pytest.approx(high)
    two = aggregate([1.0, 2.0])  # t_{0.975,1} = 12.706, sd / sqrt(n) = 0.5
    assert two.half_width == pytest.approx(12.7062 * 0.5, rel=1e-4)


def test_aggregate_one_value_and_missing():
    assert aggregate([8.0]) == Aggregate(1, 8.0)  # one seed: a mean, no interval
    assert aggregate([8.0, None, float("nan")]) == Aggregate(1, 8.0)
    assert aggregate([None]) == Aggregate(0) and aggregate([]).mean is None
    assert overlap(aggregate([1.0]), aggregate([1.0, 2.0])) is None
    assert overlap(aggregate([1.0, 1.2]), aggregate([1.1, 1.3])) is True
    assert overlap(aggregate([1.0, 1.0001]), aggregate([2.0, 2.0001])) is False


def test_inversions_and_orders():
    paper = {"SFT": 7.96, "DPO": 8.04, "PPO": 8.13, "SteerLM 2.0 it1": 8.24}
    methods = {"sft": "SFT", "dpo": "DPO", "ppo": "PPO", "ppo_gold": "PPO", "s2": "SteerLM 2.0 it1", "gone": "SFT"}
    means = {"sft": 6.0, "dpo": 6.5, "ppo": 6.2, "ppo_gold": 6.6, "s2": 6.4}
    stats = {m: aggregate([v - 0.01, v + 0.01]) for m, v in means.items()} | {"gone": aggregate([])}
    found = inversions(methods, stats, paper)
    # ppo vs ppo_gold: one method, no paper order; `gone` has no mean
    assert [(i.lower, i.higher) for i in found] == [("dpo", "ppo"), ("dpo", "s2"), ("ppo_gold", "s2")]
    first = found[0]
    assert (first.lower_method, first.higher_method) == ("DPO", "PPO")
    assert first.lower_mean == pytest.approx(6.5) and first.higher_mean == pytest.approx(6.2)
    assert first.overlap is False
    assert ascending(stats) == ["sft", "ppo", "s2", "dpo", "ppo_gold"]
    # equal means are no inversion; one seed: no interval to compare
    tie = {"a": aggregate([7.0]), "b": aggregate([7.0])}
    assert inversions({"a": "SFT", "b": "DPO"}, tie, paper) == []
    one = inversions({"a": "SFT", "b": "DPO"}, {"a": aggregate([7.5]), "b": aggregate([7.0])}, paper)
    assert len(one) == 1 and one[0].overlap is None


# ---- the report on a synthetic sweep --------------------------------------------------------------

MODELS = ["sft", "dpo", "ppo", "steerlm2.iter1"]
METHODS = {"sft": "SFT", "dpo": "DPO", "ppo": "PPO", "steerlm2.iter1": "SteerLM 2.0 it1"}
# seed -> model -> (mtbench/score, heldout/oracle/helpfulness)
FIGURES = {0: {"sft": (5.0, 1.0), "dpo": (6.0, 1.5), "ppo": (5.5, 1.2), "steerlm2.iter1": (6.5, 2.0)},
           1: {"sft": (5.2, 1.1), "dpo": (6.2, 1.4), "ppo": (5.4, 1.3), "steerlm2.iter1": (6.4, 2.1)}}


def _seed_run(root, seed, *, figures=None, failed=False):
    d = root / f"seed{seed}"
    d.mkdir(parents=True)
    stage = {"name": "compare", "kind": "mtbench", "models": MODELS, "steered": ["steerlm2.iter1"],
             "questions": "world.mtbench_questions", "title": "World suite", "pairwise_baseline": "sft",
             "paper_methods": METHODS,
             "heldout": {"prompts": "world.prompts_test", "reward_model": "rm", "kl_reference": "sft"}}
    names = ["world", "sft", "rm", "dpo", "ppo", "steerlm2"]
    recipe = {"run_dir": str(d), "seed": seed,
              "stages": [{"name": n, "kind": "x"} for n in names] + [stage]}
    (d / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    status = "failed" if failed else "done"
    manifest = {"seed": seed, "stages": [{"name": "compare", "kind": "mtbench", "status": status,
                                          **({"error": "TrainingError: loss is nan"} if failed else {})}]}
    (d / "manifest.json").write_text(json.dumps(manifest))
    if figures:
        results = {}
        for m, (score, helpful) in figures.items():
            r = {"mtbench/score": score, "mtbench/turn1": score}
            if m != "ppo" or seed == 0:  # ppo has no held-out figures in seed 1
                r.update({"heldout/oracle/helpfulness": helpful, "heldout/oracle/correctness": helpful + 1,
                          "heldout/rm_reward": helpful / 2, "heldout/kl": 0.1 * seed})
                if m != "sft":
                    r["heldout/hacking_gap"] = helpful - 1
            results[m] = r
        (d / "compare").mkdir()
        (d / "compare" / "results.json").write_text(json.dumps(results))


def _sweep(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        _seed_run(root, seed, figures=FIGURES[seed])
    _seed_run(root, 2, failed=True)
    runs = {"0": {"status": "done"}, "1": {"status": "done"},
            "2": {"status": "failed", "error": "stage 'ppo' (ppo) failed: loss is nan"}}
    (root / "sweep.json").write_text(json.dumps({"recipe": "r.yaml", "seeds": [0, 1, 2], "runs": runs}))
    return root


def test_seed_report_on_synthetic_runs(tmp_path):
    from evals.seed_report import write_seed_report

    root = _sweep(tmp_path)
    report = write_seed_report(root).read_text()
    summary = json.loads((root / "summary.json").read_text())
    assert (root / "report.png").read_bytes()[:4] == b"\x89PNG"

    st = summary["stages"]["compare"]
    assert st["models"] == MODELS and summary["seeds"] == [0, 1, 2]
    agg = st["aggregates"]["dpo"]["mtbench/score"]
    ref = aggregate([6.0, 6.2])
    assert agg["n"] == 2 and agg["mean"] == pytest.approx(ref.mean) and agg["half_width"] == pytest.approx(ref.half_width)
    assert st["per_seed"]["dpo"]["mtbench/score"] == {"0": 6.0, "1": 6.2, "2": None}
    assert st["aggregates"]["ppo"]["heldout/oracle/helpfulness"]["n"] == 1  # seed 1 has none
    assert st["aggregates"]["sft"]["heldout/hacking_gap"]["n"] == 0

    # rows in the stage's order; the reference string as written; "-" where nothing was measured
    rows = [line for line in report.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split(" | ")[0][2:] for r in rows[:4]] == MODELS
    dpo_row = rows[1]
    assert f"{ref.mean:.2f} ± {ref.half_width:.2f} (n=2)" in dpo_row and "| DPO |" in dpo_row
    assert rows[0].rstrip(" |").split(" | ")[7] == "-"  # sft: no hacking gap (the baseline; column 7 after the sampled helpfulness)
    assert "1.200 (n=1)" in rows[2]  # ppo's oracle helpfulness: one seed, no interval

    # paper order, measured order, inversions: DPO (paper 8.04) above PPO (8.13) on both figures
    assert "SFT 7.96 [sft] < DPO 8.04 [dpo] < Iterative DPO 8.09 < PPO 8.13 [ppo]" in report
    assert st["measured_order"]["mtbench/score"] == ["sft", "ppo", "dpo", "steerlm2.iter1"]
    inv = st["inversions"]["mtbench/score"]
    assert [(i["lower"], i["higher"]) for i in inv] == [("dpo", "ppo")]
    assert inv[0]["overlap"] is True and "95 % intervals overlap: yes" in report  # two seeds: wide intervals
    assert [(i["lower"], i["higher"]) for i in st["inversions"]["heldout/oracle/helpfulness"]] == [("dpo", "ppo")]
    assert st["inversions"]["heldout/oracle/helpfulness"][0]["overlap"] is None  # ppo: one seed

    # notes: the failed seed, the missing held-out figures and why
    notes = "\n".join(summary["notes"])
    assert "seed 2: no compare/results.json (stage failed: TrainingError: loss is nan)" in notes
    assert "seed 2" in report and "(failed: 2)" in report
    assert "compare: ppo: no held-out figures (an endpoint, or not measured) in seed(s) 1" in notes
    assert "compare: sft: no " in notes and "heldout/hacking_gap (the gains' baseline)" in notes


def test_report_command_and_bad_directories(tmp_path, capsys):
    root = _sweep(tmp_path)
    (root / "sweep.json").unlink()  # found from the seed<N>/ dirs alone
    assert main(["report", str(root)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert json.loads((root / "summary.json").read_text())["seeds"] == [0, 1, 2]

    single = tmp_path / "single"
    single.mkdir()
    (single / "recipe.yaml").write_text("run_dir: x\n")
    assert main(["report", str(single)]) == 1
    err = capsys.readouterr().err
    assert "not a seed sweep" in err and "single run" in err
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_report_without_paper_methods_or_heldout(tmp_path):
    from evals.seed_report import write_seed_report

    root = tmp_path / "sweep"
    d = root / "seed0"
    (d / "compare").mkdir(parents=True)
    stage = {"name": "compare", "kind": "mtbench", "models": ["sft", "runs/x/dpo/model"], "questions": "q.jsonl"}
    (d / "recipe.yaml").write_text(yaml.safe_dump({"run_dir": str(d), "seed": 0,
                                                   "stages": [{"name": "sft", "kind": "sft"}, stage]}))
    (d / "compare" / "results.json").write_text(json.dumps({"sft": {"mtbench/score": 5.0},
                                                            "dpo": {"mtbench/score": 6.0}}))
    report = write_seed_report(root).read_text()
    assert "| dpo | - | 6.00 |" in report  # one seed: no interval; a path is named as in the stage's report
    assert "No `paper_methods`" in report and "no heldout block" in report


# ---- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a,b", "", "1,,2", "-1", "0,0"])
def test_bad_seeds_exit_2(tmp_path, capsys, value):
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage()])
    with pytest.raises(SystemExit) as info:
        main(["run", str(recipe), "--seeds", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and ("comma-separated" in err or "given twice" in err)


def test_seeds_dry_run_plans_every_seed(tmp_path, capsys):
    from align.sweep import parse_seeds, seed_recipes

    assert parse_seeds(" 0, 1,2") == [0, 1, 2]
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage(), sft_stage()])
    run_dir, recipes = seed_recipes(recipe, [0, 3], ["stages.sft.train.lr=3e-4"])
    assert run_dir == tmp_path / "run"
    assert [(s, r.seed, r.run_dir) for s, r in recipes] == [(0, 0, run_dir / "seed0"), (3, 3, run_dir / "seed3")]
    assert all(r.stage("sft").train.lr == 3e-4 for _s, r in recipes)
    assert main(["run", str(recipe), "--seeds", "0,3", "--dry-run", "--force", "sft"]) == 0
    out = capsys.readouterr().out
    assert "seed 0" in out and "seed 3" in out and "run (forced)" in out
    assert not (tmp_path / "run").exists()


def test_sweep_goes_on_after_a_failed_seed(tmp_path, monkeypatch):
    """Seed 1's run fails: seed 2 still runs, sweep.json records it, the report shows it, the exit code is its."""
    from align.errors import TrainingError
    from align.runner import Runner

    def fake_run(self):
        seed = self.recipe.seed
        _seed_run(tmp_path / "run", seed, figures=FIGURES[0] if seed != 1 else None, failed=seed == 1)
        if seed == 1:
            raise TrainingError("loss is nan")
        return {}

    monkeypatch.setattr(Runner, "run", fake_run)
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "run", [world_stage()])
    assert main(["run", str(recipe), "--seeds", "0,1,2"]) == 4
    sweep = json.loads((tmp_path / "run" / "sweep.json").read_text())
    assert {s: r["status"] for s, r in sweep["runs"].items()} == {"0": "done", "1": "failed", "2": "done"}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"]["compare"]["per_seed"]["sft"]["mtbench/score"] == {"0": 5.0, "1": None, "2": 5.0}
    assert "(failed: 1)" in (tmp_path / "run" / "report.md").read_text()


def test_seed_report_steering_section(tmp_path):
    """A steerability stage's errors per model over seeds, and each model's change against the first."""
    from evals.seed_report import write_seed_report

    root = _sweep(tmp_path)
    errors = {0: {"steerlm1": 1.0, "steerlm2": 0.7, "ppo_target": 0.9}, 1: {"steerlm1": 0.8, "steerlm2": 0.72}}
    for seed, per in errors.items():
        d = root / f"seed{seed}"
        recipe = yaml.safe_load((d / "recipe.yaml").read_text())
        recipe["stages"].append({"name": "steer", "kind": "steerability",
                                 "models": ["steerlm1", "steerlm2", "ppo_target"]})
        (d / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        (d / "steer").mkdir()
        metrics = {f"steer/mae_mean/{m}": v for m, v in per.items()}
        metrics.update({f"steer/mae/verbosity/{m}": v / 2 for m, v in per.items()})
        (d / "steer" / "metrics.json").write_text(json.dumps(metrics))
    report = write_seed_report(root).read_text()
    steer = json.loads((root / "summary.json").read_text())["steering"]["steer"]
    assert steer["baseline"] == "steerlm1" and steer["models"] == ["steerlm1", "steerlm2", "ppo_target"]
    assert steer["change_vs_baseline"]["steerlm2"]["0"] == pytest.approx(-0.3)
    assert steer["change_vs_baseline"]["steerlm2"]["1"] == pytest.approx(-0.1)
    assert steer["change_vs_baseline"]["ppo_target"]["1"] is None  # not measured on seed 1
    assert steer["aggregates"]["steerlm2"]["steer/mae_mean"]["mean"] == pytest.approx(0.71)
    assert "## steer: steering error" in report and "| steerlm2 | 0.710 ± " in report and "-30 %" in report
