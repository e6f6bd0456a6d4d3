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

The nodes' two uses of TF are here, once: :func:`transform_pose` (a stamped pose into the
target frame at its stamp, the latest transform when the stamp has left the buffer) and
:meth:`TfListener.lookup_latest` (the latest transform between two frames, e.g. the base
pose).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from geometry_msgs.msg import PoseStamped, TransformStamped
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.time import Time
import tf2_geometry_msgs  # noqa: F401  (registers PoseStamped with Buffer.transform)
import tf2_ros

from .conversions import retry_with_latest
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

    def lookup_latest(self, target: str, source: str, timeout_s: float,
                      should_stop: Callable[[], bool]) -> TransformStamped:
        """Return the latest transform from ``source`` to ``target``, waiting up to ``timeout_s``.

        The wait ends early when ``should_stop()`` is true.

        Raises:
            tf2_ros.TransformException: the transform is still missing.
        """
        poll_until(lambda: self.buffer.can_transform(target, source, Time()), timeout_s,
                   should_stop, POLL_S)
        return self.buffer.lookup_transform(target, source, Time())

    def close(self, timeout_s: float = 0.2) -> bool:
        """Stop the thread, then destroy the node; return False if the thread did not stop."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        self._executor.shutdown(timeout_sec=0.0)
        self._node.destroy_node()
        return True


def transform_pose(tf: Any, msg: PoseStamped, frame: str, target: str, timeout_s: float,
                   should_stop: Callable[[], bool]
                   ) -> tuple[PoseStamped, BaseException | None]:
    """Express a stamped pose in ``target`` at its stamp, or with the latest transform.

    When the stamped lookup fails with ``ExtrapolationException`` (a stamp older than the
    TF buffer, ~10 s, or newer than its last transform) and the stamp is not zero, the
    transform is retried once with the latest one (stamp zero)
    (:func:`.conversions.retry_with_latest`).

    Args:
        tf: a :class:`TfListener` (anything with its ``transform``).
        msg: the pose; its ``header.frame_id`` is replaced by ``frame``.
        frame: the pose's frame, normalized (no leading '/').
        target: the frame to express it in.
        timeout_s: the longest wait for the transform (s).
        should_stop: true ends the wait early (shutdown).

    Returns:
        ``(pose, fallback)``: ``fallback`` is the stamped lookup's exception when the
        latest transform was used, else None.

    Raises:
        Exception: whatever tf2 raises otherwise (``tf2_ros.TransformException`` and
            others, e.g. ``numpy.linalg.LinAlgError``).
    """
    stamped = PoseStamped()
    stamped.header.stamp, stamped.header.frame_id, stamped.pose = msg.header.stamp, frame, \
        msg.pose
    try:
        return tf.transform(stamped, target, timeout_s, should_stop), None
    except tf2_ros.ExtrapolationException as exc:
        if not retry_with_latest(True, msg.header.stamp.sec, msg.header.stamp.nanosec):
            raise
        stamped.header.stamp = Time().to_msg()  # zero: the latest transform
        return tf.transform(stamped, target, timeout_s, should_stop), exc
