#!/usr/bin/env bash
# Create .venv (if missing) and install reachability_ros into it, editable.
#
#   bash scripts/setup.sh        what proposing stances needs: numpy, scipy, Pinocchio (pip:
#                                pin), onnxruntime, PyYAML, Pillow, matplotlib. No torch.
#   bash scripts/setup.sh test   the same, plus what the tests and the trainer need:
#                                torch==2.13.0 (the CPU build), onnx, tqdm, pytest, hypothesis.
#
# Both fill the same .venv: the test set-up adds to what the demo installed. A stamp per
# kind (and per version of setup.py) skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-core}
case "$kind" in
  core) spec=".";;
  test) spec=".[test]";;
  *) echo "usage: bash scripts/setup.sh [core|test]" >&2; exit 2;;
esac
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
hash=$(sha256sum setup.py | cut -c1-16)
if [ -f ".venv/.installed-$kind-$hash" ] || { [ "$kind" = core ] && [ -f ".venv/.installed-test-$hash" ]; }; then
  exit 0
fi
echo "setup: installing reachability_ros ($kind) into .venv (log: .venv/install.log)"
if ! { .venv/bin/python -m pip install --upgrade pip "setuptools<80" wheel &&
       .venv/bin/python -m pip install -e "$spec"; } >> .venv/install.log 2>&1; then
  tail -30 .venv/install.log
  echo "setup: pip install failed (full log: .venv/install.log)" >&2
  exit 1
fi
touch ".venv/.installed-$kind-$hash"
