"""benchmarks/gpu_check.py's CPU smoke mode, end to end: the GPU check must be ready for the day a GPU is lent.

Runs `gpu_check.py --device cpu --tiny` as a subprocess (about 10 s on 2 loaded cores) and checks that it exits 0
and that every section printed its figure: tokens/s for the steps, and for ZeRO-3 either a figure (deepspeed
installed: the first run JIT-builds DeepSpeed's CPU shared-memory op, about a minute, cached after) or the skip
that says why.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = r"tokens/s (\d+(?:\.\d+)?)\s+MFU (\d+(?:\.\d+)?)%"


def test_gpu_check_cpu_smoke(tmp_path):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)  # as this process sees it
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    assert re.search(r"139,584 parameters", out), out  # the tiny Llama the header states
    for sec in ("sft", "rm", "dpo", "ppo", "fsdp"):
        m = re.search(rf"^\[{sec}\] {FIGURE}", out, re.MULTILINE)
        assert m, f"no figure for {sec}:\n{out}"
        assert float(m.group(1)) > 0, m.group(0)
        assert re.search(rf"^{sec}\s+ok\s+\d", out, re.MULTILINE), f"{sec} missing from the summary:\n{out}"
    if importlib.util.find_spec("deepspeed") is None:
        assert re.search(r"^\[zero3\] SKIPPED: deepspeed is not importable", out, re.MULTILINE), out
        assert re.search(r"^zero3\s+skipped", out, re.MULTILINE), out
    else:
        assert re.search(rf"^\[zero3\] {FIGURE}", out, re.MULTILINE), out
    assert "FAILED" not in out, out
