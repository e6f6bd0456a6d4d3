#!/usr/bin/env bash
# Set up (scripts/setup.sh) and propose stances for an example grasp (no ROS needed):
# a side grasp 0.10 m above the floor; writes the ranked table and stances.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m reachability_ros propose \
  --position 2.0 1.0 0.10 --rpy 0 90 0 --degrees --top-k 5 --seed 0 --plot stances.png "$@"
