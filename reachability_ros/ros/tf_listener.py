"""A TF buffer that keeps filling while a request waits for a transform (imported by the node).

The listener lives on its own small node, spun by its own daemon thread, so
that the stance server's single-threaded executor can block in a request while
``/tf`` keeps arriving (a listener on the same node would not receive during
the wait; ros2-nav-reference.md, "Why the listener needs its own thread").

The node takes no global ROS arguments, so that ``-r __node:=...`` (which
launch passes) does not give it the server's name and the server's parameter
files do not apply to it. tf2_ros subscribes to the absolute topics ``/tf`` and
``/tf_static``, which a namespace does not change; a robot whose TF lives
elsewhere remaps them (e.g. ``-r /tf:=tf -r /tf_static:=tf_static`` in a
namespace, as Nav2 does), so the server passes the TF node its own resolution of
both names as node arguments (:func:`.conversions.tf_remap_arguments`).

Waits poll ``can_transform`` and end early when a shutdown is requested
(tf2's own waits cannot be interrupted). A callback that raises is logged and
the listener keeps spinning (:func:`.lifecycle.spin_until`).
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

from geometry_msgs.msg import PoseStamped
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
import tf2_geometry_msgs  # noqa: F401  (registers PoseStamped with Buffer.transform)
import tf2_ros

from .lifecycle import poll_until, SPIN_PERIOD_S, spin_until

#: Time between two checks of a pending transform (s).
POLL_S = 0.01


class TfListener:
    """A ``tf2_ros.Buffer`` filled by a listener on its own node and thread.

    Args:
        node_name: name of the listener's node.
        namespace: its namespace (the server's).
        remap_arguments: the node's arguments, remapping rules of ``/tf`` and
            ``/tf_static`` (``['--ros-args', '-r', '/tf:=/robot/tf', ...]``;
            :func:`.conversions.tf_remap_arguments`).
    """

    def __init__(self, node_name: str, namespace: str = '/',
                 remap_arguments: Sequence[str] = ()) -> None:
        self.buffer = tf2_ros.Buffer()
        self._node = rclpy.create_node(node_name, namespace=namespace,
                                       cli_args=list(remap_arguments),
                                       use_global_arguments=False,
                                       start_parameter_services=False)
        self._listener = tf2_ros.TransformListener(self.buffer, self._node)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self._node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name='tf_listener', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        def report(exc: Exception) -> None:
            if not self._stop.is_set() and rclpy.ok():  # not a shutdown race
                self._node.get_logger().error(' '.join(
                    f'TF listener: {type(exc).__name__}: {exc}'.split()))
        spin_until(lambda: self._executor.spin_once(timeout_sec=SPIN_PERIOD_S),
                   lambda: self._stop.is_set() or not rclpy.ok(), on_error=report,
                   ends=(ExternalShutdownException,), pause=self._stop.wait)

    @property
    def topics(self) -> tuple[str, str]:
        """Return the topics the listener subscribes to (``/tf``, ``/tf_static`` once resolved)."""
        return self._listener.tf_sub.topic_name, self._listener.tf_static_sub.topic_name

    def transform(self, stamped: PoseStamped, target: str, timeout_s: float,
                  should_stop: Callable[[], bool]) -> PoseStamped:
        """Express a pose in ``target`` once TF has what it needs, waiting up to ``timeout_s``.

        The wait ends early when ``should_stop()`` is true.

        Raises:
            tf2_ros.TransformException: the transform is still missing (the
                exception tf2 raises for it: lookup, connectivity, extrapolation).
            Exception: anything else tf2 raises (e.g. ``numpy.linalg.LinAlgError``).
        """
        frame, stamp = stamped.header.frame_id, stamped.header.stamp
        poll_until(lambda: self.buffer.can_transform(target, frame, stamp), timeout_s,
                   should_stop, POLL_S)
        return self.buffer.transform(stamped, target)  # no timeout: raises what tf2 finds

    def close(self, timeout_s: float = 0.2) -> bool:
        """Stop the thread, then destroy the node; return False if the thread did not stop."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        self._executor.shutdown(timeout_sec=0.0)
        self._node.destroy_node()
        return True
