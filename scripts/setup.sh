#!/usr/bin/env bash
# Create .venv (if missing) and install reachability_ros with its test + training extras.
# torch is pinned to 2.13.0: that CPU build is on local disk; plain `torch` would pull CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum setup.py | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing reachability_ros and its dependencies into .venv (log: .venv/install.log)"
  if ! { .venv/bin/python -m pip install --upgrade "pip" "setuptools<80" wheel &&
         .venv/bin/python -m pip install -e '.[test]'; } > .venv/install.log 2>&1; then
    tail -30 .venv/install.log
    echo "setup: pip install failed (full log: .venv/install.log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
