#!/usr/bin/env bash
# Create .venv (if missing) and install reachability_ros with its test + training extras.
# torch is pinned to 2.13.0: that CPU build is on local disk; plain `torch` would pull CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat setup.py | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade "pip" "setuptools<80" wheel
  .venv/bin/python -m pip install --quiet -e '.[test]'
  touch "$stamp"
fi
