#!/usr/bin/env bash
# Set up .venv with the test and training extras (scripts/setup.sh test) and run the whole
# test suite, the README's command-line examples included (test/test_readme.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q test "$@"
