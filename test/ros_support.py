"""Helpers of the ROS tests: which ROS modules are importable, and the skip that says why."""

import contextlib
import importlib.util
import threading

import pytest


def have(*modules: str) -> bool:
    """Tell whether every module can be imported (without importing it)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


def requires_ros(*modules: str):
    """A skip marker for tests that need these ROS modules, with the reason."""
    return pytest.mark.skipif(
        not have(*modules),
        reason='ROS 2 is not installed (needs ' + ', '.join(modules) + '): '
               'source /opt/ros/jazzy/setup.bash')


@contextlib.contextmanager
def spinning(executor, period_s: float = 0.05):
    """Spin ``executor`` on a background thread while the ``with`` block runs."""
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=period_s)
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(5.0)


@contextlib.contextmanager
def rclpy_context():
    """rclpy initialized for the block (unless it already is), shut down after it."""
    import rclpy
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    try:
        yield
    finally:
        if owns:
            rclpy.try_shutdown()
