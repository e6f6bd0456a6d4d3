"""``python -m reachability_ros``: the no-ROS command line."""

from reachability_ros.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
