#!/usr/bin/env bash
# Prove the CUDA path end to end in one short run (at most ~8 minutes on one card) and print one table:
# style transfer at 512/1024 px (fp32 vs bf16: time, peak GPU memory, pictures, losses), a 1024 px dream,
# a class visualization and a tiled 4096 px style transfer. Run from the repository root:
#
#     benchmarks/gpu_check.sh                       # CUDA (needs a torch with CUDA)
#     benchmarks/gpu_check.sh --device cpu --quick  # the same checks at an eighth of the size, on the CPU
#
# Uses .venv if there is one, else python3. The weight packages must be installed (./setup.sh does it);
# wheels in ./.whl (see the device tool's notes) are installed first when present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/dc-site .whl/*.whl
  export PYTHONPATH="/tmp/dc-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
