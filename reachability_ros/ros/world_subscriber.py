"""The stance server's world inputs on ROS: the map or costmap, obstacle markers, TF.

Thin: the messages are read into plain values here, once, and every decision is in
:mod:`.world_input` (tested without ROS).

* The map: ``nav_msgs/OccupancyGrid`` on ``map_topic`` (default Nav2's global costmap,
  ``/global_costmap/costmap``), subscribed keep last 1, reliable, transient local: the
  QoS Nav2's map server and costmaps publish with, so the last map arrives on joining
  (ros2-nav-reference.md). Its distance field is built on a worker thread.
* The boxes: ``obstacles_file`` (YAML, read at start-up) and CUBE markers on
  ``obstacles_topic`` (``visualization_msgs/MarkerArray``, keep last 10, reliable,
  volatile: that QoS receives from volatile and transient-local publishers alike).
* TF: each request places the map's and the boxes' frames in ``target_frame`` with the
  latest transform, waiting up to the server's ``tf_timeout_s``.
"""

from __future__ import annotations

from typing import Any, Callable

from nav_msgs.msg import OccupancyGrid as OccupancyGridMsg
from rclpy.node import Node
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.paths import resolve_data_path
from visualization_msgs.msg import MarkerArray

from .conversions import normalize_frame_id
from .qos import map_qos, markers_qos
from .tf_listener import TfListener
from .world_input import (grid_from_fields, planar_pose, world_for_request,
                          world_parameter_specs, WORLD_PARAMETERS, WorldAnswer, WorldState)

__all__ = ['WORLD_PARAMETERS', 'WorldInputs', 'map_qos', 'markers_qos',
           'world_parameter_specs']


def _seconds(stamp: Any) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


class WorldInputs:
    """The map and obstacle subscriptions of a node, and each request's world.

    Args:
        node: the stance server (its world parameters are declared).
        tf: the server's TF listener.
        prepare: ``grid -> World`` (the proposer's ``scene.prepare``).
        should_stop: true when the process shuts down (ends TF waits early).

    Raises:
        ConfigError: the obstacles file cannot be read.
    """

    def __init__(self, node: Node, tf: TfListener, prepare: Callable,
                 should_stop: Callable[[], bool]) -> None:
        from reachability_ros.world_io import load_obstacles
        self._node, self._tf, self._should_stop = node, tf, should_stop
        value = node.get_parameter
        self.map_topic = str(value('map_topic').value).strip()
        self.map_required = bool(value('map_required').value)
        self.max_age_s = float(value('map_max_age_s').value)
        obstacles_file = str(value('obstacles_file').value).strip()
        markers_topic = str(value('obstacles_topic').value).strip()
        boxes = load_obstacles(resolve_data_path(obstacles_file)) if obstacles_file else None
        if self.map_required and not self.map_topic:
            raise ConfigError('map_required is true but map_topic is empty')
        self.state = WorldState(prepare, boxes)
        self._subs = []
        if self.map_topic:
            self._subs.append(node.create_subscription(OccupancyGridMsg, self.map_topic,
                                                       self._on_map, map_qos()))
        if markers_topic:
            self._subs.append(node.create_subscription(MarkerArray, markers_topic,
                                                       self._on_markers, markers_qos()))

    def _on_map(self, msg: OccupancyGridMsg) -> None:
        info = msg.info
        p, o = info.origin.position, info.origin.orientation
        try:
            grid = grid_from_fields(info.width, info.height, info.resolution,
                                    (p.x, p.y, p.z), (o.x, o.y, o.z, o.w), msg.data,
                                    msg.header.frame_id, _seconds(msg.header.stamp))
        except ConfigError as exc:
            self.state.refuse_grid(str(exc))
            self._node.get_logger().warning(f'map on {self.map_topic} refused: {exc}')
            return
        self.state.set_grid(grid, self._now())

    def _on_markers(self, msg: MarkerArray) -> None:
        plain = []
        for m in msg.markers:
            p, o, s = m.pose.position, m.pose.orientation, m.scale
            plain.append({'ns': m.ns, 'id': m.id, 'type': m.type, 'action': m.action,
                          'frame_id': m.header.frame_id, 'position': (p.x, p.y, p.z),
                          'orientation': (o.x, o.y, o.z, o.w), 'scale': (s.x, s.y, s.z)})
        self.state.set_markers(plain)

    def _now(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9

    def set_prepare(self, prepare: Callable) -> None:
        """Rebuild the map's field with a new proposer's checker."""
        self.state.set_prepare(prepare)

    def for_request(self, target_frame: str, timeout_s: float) -> WorldAnswer:
        """Return this request's world in ``target_frame`` (or why there is none)."""

        def lookup(frame: str) -> tuple[float, float, float, float]:
            frame = normalize_frame_id(frame)
            t = self._tf.lookup_latest(target_frame, frame, timeout_s,
                                       self._should_stop).transform
            return planar_pose((t.translation.x, t.translation.y, t.translation.z),
                               (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w),
                               f"the transform from '{frame}' to '{target_frame}'")

        return world_for_request(self.state.snapshot(), target_frame, self._now(),
                                 map_topic=self.map_topic, map_required=self.map_required,
                                 max_age_s=self.max_age_s, lookup=lookup)

    def close(self, timeout_s: float = 0.2) -> bool:
        """Stop the map worker."""
        return self.state.close(timeout_s)
