"""Console-script entry points of the nodes: a quiet exit on a signal from the first instant.

Importing a node pulls in rclpy, numpy and Pinocchio (about a second). A SIGINT or SIGTERM
in that window would end the process with a KeyboardInterrupt traceback or as killed by
the signal. Each entry point first installs handlers that exit at once, quietly, with the
code the node itself gives for that signal (nothing is running yet, so there is nothing to
clean up); then it imports the node, whose ``main()`` installs its own handlers
(:mod:`.lifecycle`). Nothing here imports ROS.
"""

from __future__ import annotations

import importlib
import os
import signal
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


def _run(module: str, codes: Mapping[int, int]) -> int:
    guard_start_up(codes)
    return importlib.import_module(module).main()


def stance_server() -> int:
    """Run the ``stance_server`` node (:mod:`.stance_node`)."""
    return _run('reachability_ros.ros.stance_node', STANCE_SERVER_CODES)


def stance_navigator() -> int:
    """Run the ``stance_navigator`` node (:mod:`.stance_navigator`)."""
    return _run('reachability_ros.ros.stance_navigator', STANCE_NAVIGATOR_CODES)


def trainer() -> int:
    """Run the ``trainer`` node (:mod:`.trainer_node`)."""
    return _run('reachability_ros.ros.trainer_node', TRAINER_CODES)
