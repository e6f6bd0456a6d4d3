"""The QoS profiles of the nodes' topics, in one place (imported only by the nodes).

- :func:`latched_qos`: keep last ``depth``, reliable, transient local: the companion topics
  of ``/propose_stance``, ``/navigate_to_grasp/report``, the trainer's progress, and what
  Nav2's map server and costmaps publish with (ros2-nav-reference.md), so a subscriber
  with it gets the last message on joining;
- :func:`map_qos`: the subscription to a Nav2 map or costmap (``latched_qos(1)``);
- :func:`markers_qos`: the obstacle markers (keep last 10, reliable, volatile: it receives
  from volatile and transient-local reliable publishers alike).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def latched_qos(depth: int = 1) -> QoSProfile:
    """Return a latched QoS: keep last ``depth``, reliable, transient local."""
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      reliability=ReliabilityPolicy.RELIABLE)


def map_qos() -> QoSProfile:
    """Return the QoS of Nav2's maps and costmaps: keep last 1, reliable, transient local."""
    return latched_qos(1)


def markers_qos() -> QoSProfile:
    """Return the obstacle markers' QoS: keep last 10, reliable, volatile."""
    return QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE)
