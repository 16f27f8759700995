#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.py needs that the GPU image (device kind nvidia-h200) lacks, into .whl/
# (carried to the device with carry=[".whl"]; /work/.library/device/README.md, "nvidia-h200" note).
#
# The image has torch 2.11, transformers 5.17, accelerate, peft, pyyaml, rich, numpy, ninja, psutil, py-cpuinfo,
# msgpack, einops, nvidia-ml-py, tqdm (device/KINDS.md); it lacks:
#   pydantic + pydantic-core, annotated-types, typing-inspection: align.config validates with pydantic;
#   typing-extensions: pydantic 2.14 needs >= 4.16, the image's version is unknown (a newer one is compatible);
#   deepspeed + hjson: the zero3 section. PyPI has deepspeed as an sdist only, so a pure-Python wheel is built
#   here (DS_BUILD_OPS=0: ops are JIT-built where used; ZeRO-3 with torch's AdamW uses none). Its setup.py
#   imports torch, hence --no-build-isolation with the project's venv.
# trl and datasets are not needed: gpu_check.py's imports pull in neither.
# Versions: those of the project's venv (pydantic pins pydantic-core exactly). One version of each, or the
# device's `pip install --no-index` of .whl/*.whl fails. Run from anywhere: bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    typing-extensions==4.16.0 hjson==3.1.0

DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl deepspeed==0.19.8

ls -l .whl
du -ch .whl/*.whl | tail -1
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
if [ "$total" -ge $((64 * 1024 * 1024)) ]; then
    echo "over the device's 64 MiB a call: $total bytes" >&2
    exit 1
fi
