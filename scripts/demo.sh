#!/usr/bin/env bash
# Set up .venv with what proposing needs (scripts/setup.sh: no torch) and propose stances
# for an example grasp, no ROS needed: a side grasp 0.10 m above the floor, 2 m ahead and
# 1 m to the left of the origin, the robot at the origin. Prints the ranked table and
# writes stances.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m reachability_ros propose \
  --position 2.0 1.0 0.10 --rpy 0 90 0 --degrees --current-base 0 0 0 --top-k 5 \
  --plot stances.png "$@"
