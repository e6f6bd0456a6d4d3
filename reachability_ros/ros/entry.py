"""Console-script entry points of the nodes: a quiet exit on a signal from the first instant.

Importing a node pulls in rclpy, numpy and Pinocchio (about a second). A SIGINT or SIGTERM
in that window would end the process with a KeyboardInterrupt traceback or as killed by
the signal. Each entry point first installs handlers that exit at once, quietly, with the
code the node itself gives for that signal (nothing is running yet, so there is nothing to
clean up); then it imports the node, whose ``main()`` installs its own handlers
(:mod:`.lifecycle`). A node that cannot be imported (ROS not sourced, or a message package
missing: ``nav2_msgs`` is not part of a bare ROS install and only the navigator needs it)
ends with one FATAL line and exit code 1, as a node that cannot start does, not with a
traceback. Nothing here imports ROS.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Mapping

#: Exit code per signal before the node runs, as each node's ``main()`` reports it.
STANCE_SERVER_CODES = {signal.SIGINT: 0, signal.SIGTERM: 0}
STANCE_NAVIGATOR_CODES = {signal.SIGINT: 0, signal.SIGTERM: 0}
TRAINER_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def guard_start_up(codes: Mapping[int, int]) -> None:
    """Install handlers that end the process at once with ``codes[signum]`` (main thread)."""
    def handler(signum: int, frame: object) -> None:
        os._exit(codes.get(signum, 1))

    for signum in codes:
        signal.signal(signum, handler)


def import_failure(node_name: str, exc: ImportError) -> str:
    """Return the one FATAL line of a node whose module cannot be imported."""
    missing = (exc.name or '').split('.')[0]
    hint = ('source /opt/ros/$ROS_DISTRO/setup.bash (and the install/setup.bash of the '
            'workspace) first, then install what is still missing'
            + (f": sudo apt install ros-$ROS_DISTRO-{missing.replace('_', '-')}, or rosdep "
               'install --from-paths src --ignore-src' if missing else ''))
    text = f'[FATAL] [{node_name}]: cannot start: {type(exc).__name__}: {exc}; {hint}'
    return ' '.join(text.split())


def _run(module: str, node_name: str, codes: Mapping[int, int]) -> int:
    guard_start_up(codes)
    try:
        node = importlib.import_module(module)
    except ImportError as exc:
        print(import_failure(node_name, exc), file=sys.stderr, flush=True)
        return 1
    return node.main()


def stance_server() -> int:
    """Run the ``stance_server`` node (:mod:`.stance_node`)."""
    return _run('reachability_ros.ros.stance_node', 'stance_server', STANCE_SERVER_CODES)


def stance_navigator() -> int:
    """Run the ``stance_navigator`` node (:mod:`.stance_navigator`)."""
    return _run('reachability_ros.ros.stance_navigator', 'stance_navigator',
                STANCE_NAVIGATOR_CODES)


def trainer() -> int:
    """Run the ``trainer`` node (:mod:`.trainer_node`)."""
    return _run('reachability_ros.ros.trainer_node', 'trainer', TRAINER_CODES)
