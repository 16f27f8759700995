"""The `align` command. Thin: parse arguments, hand over, turn errors into exit codes."""
from __future__ import annotations

import argparse
import logging
import sys

from align.errors import AlignError
from align.sweep import parse_seeds

EPILOG = """\
examples:
  align run recipes/quickstart.yaml                 run (or resume) every stage
  align run recipes/quickstart.yaml --dry-run       validate and print the plan
  align run R.yaml --set stages.sft.train.lr=3e-4   override any field by dotted path
  align run R.yaml --force sft                      rerun 'sft' and every stage that uses it
  align run R.yaml --seeds 0,1,2                    once per seed in run_dir/seed<N>, then one report
  align report runs/quickstart                      (re)write the seed report of a --seeds run
  align kinds                                       list stage kinds
  align kinds sft                                   every field of a stage kind, with help
  align kinds dpo --trainer examples/simpo.py:SimPOTrainer   and a plugin trainer's options
"""


# One module per extra command (score, generate, eval, serve, ...): `add_parser(sub)` registers it.
COMMAND_MODULES: list[str] = ["align.commands.eval", "align.commands.serve", "align.commands.generate",
                               "align.commands.score", "align.commands.report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="align",
        description="steeralign: reward models, SteerLM 2.0, DPO and PPO from one recipe YAML.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a recipe (validate, then each stage in order)",
        description=(
            "Validate RECIPE completely (schema, references between stages, files), then run its "
            "stages in order into run_dir. Stages already done with an unchanged config are skipped; "
            "an interrupted stage resumes from its last checkpoint. Exit codes: 0 ok, 2 invalid "
            "recipe, 3 bad data, 4 training error, 1 other failure."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("recipe", help="path to the recipe YAML")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field by dotted path, stages by name: stages.sft.train.lr=1e-4 (repeatable)")
    run.add_argument("--dry-run", action="store_true", help="validate and print the resolved plan; run nothing")
    run.add_argument("--force", action="append", default=[], metavar="STAGE",
                     help="rerun STAGE and every stage that depends on it (repeatable)")
    run.add_argument("--seeds", type=parse_seeds, metavar="N,N,...",
                     help="run once per seed into run_dir/seed<N> (seed overridden; --set and --force apply to "
                          "each), then write run_dir/report.md, report.png and summary.json")
    run.set_defaults(func=_cmd_run)

    kinds = sub.add_parser("kinds", help="list stage kinds, or show one kind's fields")
    kinds.add_argument("kind", nargs="?", help="a stage kind to describe")
    kinds.add_argument("--trainer", metavar="SPEC", help="also show the options of a trainer class for KIND "
                                                         "('package.module:Class' or 'file.py:Class')")
    kinds.set_defaults(func=_cmd_kinds)

    # Other commands live in their own modules, each with `add_parser(subparsers)`.
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _cmd_run(args) -> int:
    from align.plan import print_plan
    from align.recipe import load_recipe
    from align.runner import Runner

    if args.seeds is not None:
        from align.sweep import run_sweep

        return run_sweep(args.recipe, args.seeds, overrides=args.overrides, force=args.force, dry_run=args.dry_run)
    recipe = load_recipe(args.recipe, args.overrides)
    runner = Runner(recipe, force=args.force)
    if args.dry_run:
        print_plan(recipe, runner)
        return 0
    runner.run()
    logging.getLogger("align").info("run finished: %s", recipe.run_dir)
    return 0


def _cmd_kinds(args) -> int:
    from align.plan import print_kinds

    return print_kinds(args.kind, trainer=args.trainer)


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=verbose, markup=False)],
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except AlignError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file the run needs (permissions, a full disk, ...), named by the OS message
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, or an input nothing checked: no traceback unless asked for
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}\n(rerun with --debug for the traceback, and please "
              "report it: bad input deserves a clear message)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
