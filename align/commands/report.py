"""`align report RUN_DIR`: the seed report of a `align run RECIPE --seeds ...` directory (thin: hand over)."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Aggregate the mtbench stage(s) of every seed's run in RUN_DIR (made by `align run RECIPE
--seeds 0,1,2`): per model, mean and 95% t-interval over seeds of the MT-Bench score and the
held-out figures, the paper's Table 4 order beside the measured one, and every inversion.
Writes RUN_DIR/report.md, report.png and summary.json.

example:
  align run recipes/quickstart.yaml --seeds 0,1,2     (writes the report itself at the end)
  align report runs/quickstart                        (rewrite it, e.g. after a seed was rerun)
"""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="the seed report of a --seeds run (means, 95% intervals, paper order)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="the run_dir of `align run RECIPE --seeds ...` (holds seed<N>/ runs)")
    p.set_defaults(func=run)


def run(args) -> int:
    from evals.seed_report import write_seed_report

    print(f"report: {write_seed_report(args.run_dir)}")
    return 0
