"""Live camera intrinsics for the nodes: a ``sensor_msgs/CameraInfo`` subscription.

Each node that checks visibility (the stance server, the navigator) may name a CameraInfo
topic in its parameter ``camera_info_topic`` (empty: none). When a CameraInfo arrives, its
``k``, ``width``, ``height`` and ``header.frame_id`` go through
:func:`reachability_ros.camera_info.camera_from_intrinsics`; a camera that differs from the
one in use is applied (the node rebuilds its visibility check), an identical one is not.
A refused CameraInfo (another frame, zero focal lengths, ...) is ignored with one warning
per reason, not one per message. :meth:`CameraInfoInput.report` says which intrinsics the
node uses and since when (the stamp of the CameraInfo that brought them).

QoS: best effort, depth 5 (``qos_profile_sensor_data``), which receives from reliable and
best-effort publishers alike (camera drivers use either).
"""

from __future__ import annotations

import threading
from typing import Callable

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from reachability_ros.camera_info import (camera_from_intrinsics, camera_overrides,
                                          camera_report, same_intrinsics)
from reachability_ros.core.config import CameraConfig
from reachability_ros.core.errors import ConfigError
from sensor_msgs.msg import CameraInfo


#: The stance server's parameter that names the CameraInfo topic (read once, at start-up;
#: declared with the node's own parameters, :func:`.parameters.node_parameter_specs`).
CAMERA_INFO_PARAMETER = 'camera_info_topic'


class CameraInfoInput:
    """Follow a CameraInfo topic and apply intrinsics that change.

    Args:
        node: the node that subscribes.
        topic: the CameraInfo topic.
        current: returns the camera in use.
        apply: applies a new camera; returns '' on success, else why it was refused.
        callback_group: the subscription's callback group (None: the node's default).
    """

    def __init__(self, node: Node, topic: str, current: Callable[[], CameraConfig],
                 apply: Callable[[CameraConfig], str], callback_group=None) -> None:
        self._node = node
        self.topic = topic
        self._current = current
        self._apply = apply
        self._lock = threading.Lock()
        self._since: dict | None = None
        self._warned: set[str] = set()
        self._sub = node.create_subscription(CameraInfo, topic, self._on_info,
                                             qos_profile_sensor_data,
                                             callback_group=callback_group)

    def _warn_once(self, text: str) -> None:
        with self._lock:
            if text in self._warned:
                return
            self._warned.add(text)
        self._node.get_logger().warning(' '.join(text.split()))

    def _on_info(self, msg: CameraInfo) -> None:
        current = self._current()
        try:
            camera = camera_from_intrinsics([float(v) for v in msg.k], int(msg.width),
                                            int(msg.height), msg.header.frame_id, current)
        except ConfigError as exc:
            self._warn_once(f'ignoring the camera info on {self.topic}: {exc}')
            return
        with self._lock:
            applied = self._since is not None
        if applied and same_intrinsics(camera, current):
            return
        error = self._apply(camera)
        if error:
            self._warn_once(f'cannot use the camera info on {self.topic}: {error}')
            return
        with self._lock:
            self._since = {'sec': int(msg.header.stamp.sec),
                           'nanosec': int(msg.header.stamp.nanosec)}
        fx, fy, cx, cy = camera.intrinsics()
        self._node.get_logger().info(
            f'camera intrinsics from {self.topic}: {camera.width}x{camera.height}, fx {fx:g}, '
            f'fy {fy:g}, cx {cx:g}, cy {cy:g} '
            f"(horizontal field of view {camera_report(camera, '')['hfov_deg']:.1f} deg)")

    def report(self, camera: CameraConfig) -> dict:
        """Return the report's ``camera`` entry for the camera in use."""
        with self._lock:
            since = self._since
        return camera_report(camera, 'camera_info' if since else 'config', self.topic, since)


def camera_entry(camera_input: CameraInfoInput | None, camera: CameraConfig) -> dict:
    """Return the report's ``camera`` entry: the camera in use, its source and since when."""
    if camera_input is None:
        return camera_report(camera, 'config')
    return camera_input.report(camera)


def follow_camera_info(node: Node, current: Callable[[], CameraConfig]
                       ) -> CameraInfoInput | None:
    """Follow the topic of the node's ``camera_info_topic`` parameter (None when it is empty).

    Changed intrinsics are applied through the node's ``robot.camera.*`` parameters
    (:func:`set_camera_parameters`).
    """
    topic = node.get_parameter(CAMERA_INFO_PARAMETER).value
    if not topic:
        return None
    return CameraInfoInput(node, topic, current, lambda camera: set_camera_parameters(
        node, camera))


def set_camera_parameters(node: Node, camera: CameraConfig) -> str:
    """Apply a camera through the node's own ``robot.camera.*`` parameters, atomically.

    The node's parameter callback validates the change and rebuilds what depends on
    the camera once (the stance server: its proposer), and ``ros2 param get`` shows the
    intrinsics in use.

    Returns:
        '' when the parameters were set, else the refusal's reason.
    """
    result = node.set_parameters_atomically([Parameter(name, value=value) for name, value
                                             in camera_overrides(camera).items()])
    return '' if result.successful else (result.reason or 'refused')
