#!/usr/bin/env bash
# The wheels trainspeed needs on the lent GPU machine beyond what its image holds (it has torch, numpy,
# rich, matplotlib, pytest, filelock, pillow, safetensors and nvidia-ml-py; not pydantic or platformdirs, and
# typing-extensions goes with pydantic in the version it was tested with),
# for its Python 3.12, into .whl/ (ignored by git). Then, with the device tool, one call:
#   run(carry=[".whl"], timeout_s=560, command="python3 -m pip install -q --no-index --no-deps --no-compile
#       --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
#       && python3 benchmarks/gpu.py --out $OUT")
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 platformdirs==4.14.9 typing-extensions==4.16.0
ls .whl
