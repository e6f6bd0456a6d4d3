"""``python -m reachability_ros``: the no-ROS command line (see ``reachability_ros.cli``)."""

import sys

if __name__ == "__main__":
    try:
        from reachability_ros.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the modules load: no traceback either
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(main())
