#!/usr/bin/env bash
# Run the test suite (all but the torch tests) with the oldest dependency versions that
# setup.py allows, numpy 1.x among them, as a ROS 2 robot has it (Ubuntu 24.04: numpy 1.26,
# scipy 1.11, Pillow 10.2, matplotlib 3.6, PyYAML 6.0.1, the distribution's Pinocchio 3).
# In .venv-oldest.
#
# Pinocchio: no Pinocchio 3 or 4 wheel on PyPI declares numpy 1.x support (their boost
# wheel asks for numpy >= 2), so pin 4.1 is installed and numpy 1.26.4 put in after it;
# pip reports that conflict, and the tests then show whether the code runs with numpy 1.x.
# The lowest Pinocchio (pin 3.3) is tested with numpy 2 by: bash scripts/test_oldest.sh pin3
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
which=${1:-numpy1}
case "$which" in
  numpy1) venv=.venv-oldest
          first=(pin==4.1.0 onnxruntime==1.20.1 matplotlib==3.6.3 pyyaml==6.0.1 pillow==10.2.0)
          after=(numpy==1.26.4 scipy==1.11.4);;
  pin3)   venv=.venv-pin3
          first=(pin==3.3.1 onnxruntime matplotlib pyyaml scipy pillow)
          after=();;
  *) echo "usage: bash scripts/test_oldest.sh [numpy1|pin3]" >&2; exit 2;;
esac
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  echo "test_oldest: installing ${first[*]} ${after[*]} into $venv (log: $venv/install.log)"
  if ! { "$venv/bin/python" -m pip install --only-binary :all: "${first[@]}" "pytest<9" \
           hypothesis &&
         { [ ${#after[@]} -eq 0 ] || "$venv/bin/python" -m pip install --only-binary :all: \
             "${after[@]}"; }; } > "$venv/install.log" 2>&1; then
    tail -30 "$venv/install.log"
    echo "test_oldest: pip install failed" >&2
    exit 1
  fi
  touch "$venv/.installed"
fi
"$venv/bin/python" -c "import numpy, pinocchio, onnxruntime, matplotlib, yaml, scipy, PIL; print('test_oldest:', 'numpy', numpy.__version__, 'pin', pinocchio.__version__, 'onnxruntime', onnxruntime.__version__, 'matplotlib', matplotlib.__version__, 'PyYAML', yaml.__version__, 'scipy', scipy.__version__, 'Pillow', PIL.__version__)"
exec env PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -q -p no:cacheprovider test
