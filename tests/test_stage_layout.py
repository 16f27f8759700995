"""A stage is a thin adapter that no other stage imports (issue 15): what two stages share lives
in align/ (evaluation, rollouts, steerlm, world), not in one of them."""
import ast
from pathlib import Path

import align.stages

STAGES = Path(align.stages.__file__).parent
SHARED = {"align.stages", "align.stages.base"}


def test_no_stage_imports_another_stage():
    offenders = []
    for path in sorted(STAGES.glob("*.py")):
        if path.name in ("__init__.py", "base.py"):
            continue
        modules = {p.stem for p in STAGES.glob("*.py")} - {"__init__", "base"}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "align.stages":  # from align.stages import dpo
                names = [f"align.stages.{a.name}" for a in node.names if a.name in modules]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                names = []
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("align.stages") and n not in SHARED]
    assert not offenders, offenders
