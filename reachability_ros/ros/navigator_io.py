"""Plain data between the ``stance_navigator`` node and its decisions (no ROS imports).

- the node's parameters (:class:`NavigatorConfig`, :func:`navigator_parameter_specs`) and
  what the launch file gives it (:func:`navigator_launch_parameters`);
- the stance server's answer (:class:`ProposeAnswer`, with :func:`arms_from_candidates` and
  :func:`report_reason` to read the companion topics that belong to it) and Nav2's outcome
  (:class:`NavOutcome`).

The node's parameters are :data:`NAVIGATOR_NODE_PARAMETERS` (``config_file``: the stance
server's YAML, whose ``robot`` section gives the navigator the same robot model and camera)
plus the dotted fields of :class:`NavigatorConfig` (``max_attempts``,
``arrival.tolerance_m``, ...), declared through :func:`.parameters.parameter_specs` with
their descriptions and ranges. Those that name what the node creates at start-up
(:data:`NAVIGATOR_START_UP_PARAMETERS`: its action, clients, topics, frame) are read-only;
the others change at run time (``ros2 param set``), checked by
:func:`navigator_config_update`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import json
from typing import Any, Mapping, Sequence

import numpy as np

from reachability_ros.core.arrival import ArrivalConfig
from reachability_ros.core.config import config_field, ConfigSection, RobotConfig
from reachability_ros.core.errors import ConfigError

from .launch_args import parse_bool, target_frame
from .parameters import (parameter_specs, ParameterSpec, plain_parameter_value,
                         RCLPY_PARAMETERS, resolve_urdf, stance_config_file)

_f = config_field

#: The navigator's parameters that are not part of :class:`NavigatorConfig`.
NAVIGATOR_NODE_PARAMETERS = ('config_file',)
#: Read once at start-up (the entities the node creates, its frame, its robot): read-only.
NAVIGATOR_START_UP_PARAMETERS = ('config_file', 'action_name', 'nav2_action',
                                 'propose_service', 'cmd_vel_topic', 'arm_topic',
                                 'target_frame', 'camera_info_topic')


@dataclass(frozen=True)
class NavigatorConfig(ConfigSection):
    """The ``stance_navigator`` node's parameters (dotted names: ``arrival.tolerance_m``)."""

    action_name: str = _f('/navigate_to_grasp', 'the action this node offers '
                          '(nav2_msgs/action/NavigateToPose; goal.pose = the grasp)')
    nav2_action: str = _f('/navigate_to_pose', "Nav2's NavigateToPose action")
    propose_service: str = _f('/propose_stance', 'the stance server (nav_msgs/srv/GetPlan)')
    cmd_vel_topic: str = _f('/cmd_vel', 'base corrections (geometry_msgs/Twist, body frame)')
    arm_topic: str = _f('/arm_controller/joint_trajectory', 'the arm command '
                        '(trajectory_msgs/JointTrajectory, the five arm joints)')
    target_frame: str = _f('map', "frame of the stances and of Nav2's goals; the grasp is "
                           'transformed into it')
    camera_info_topic: str = _f('', 'sensor_msgs/CameraInfo of the front camera for the '
                                'visibility check on arrival; empty = robot.camera of '
                                'config_file')
    max_attempts: int = _f(3, 'stances tried, in rank order', 1, 100)
    arm_time_from_start_s: float = _f(2.0, 'time_from_start of the arm command (s)',
                                      0.0, 600.0)
    server_timeout_s: float = _f(5.0, 'wait for /propose_stance and Nav2 to appear (s)',
                                 0.0, 600.0)
    propose_timeout_s: float = _f(30.0, 'wait for the stances (s)', 0.1, 600.0)
    navigation_timeout_s: float = _f(600.0, 'longest Nav2 navigation to one stance (s); then '
                                     'it is canceled and the next stance tried', 1.0, 86400.0)
    tf_timeout_s: float = _f(1.0, 'wait for the base pose and the grasp transform (s)',
                             0.0, 60.0)
    settle_s: float = _f(0.3, 'pause after Nav2 or a correction stops, before the landed '
                         'base is read (s)', 0.0, 10.0)
    correction_rate_hz: float = _f(20.0, 'control rate of the base correction (Hz)',
                                   1.0, 200.0)
    arrival: ArrivalConfig = field(default_factory=ArrivalConfig,
                                   metadata={'description': 'arrival check and correction'})

    @property
    def report_topic(self) -> str:
        """Return the latched JSON report topic: ``<action_name>/report``."""
        return self.action_name.rstrip('/') + '/report'


def navigator_parameter_specs(config_file: str = '') -> list[ParameterSpec]:
    """Return the declarations of every parameter of the ``stance_navigator`` node."""
    specs = [ParameterSpec('config_file', 'string', config_file,
                           "the stance server's YAML (config/lekiwi.yaml layout): its robot "
                           'section is the robot model, camera included, of the arrival '
                           'check; empty = the built-in LeKiwi'),
             *parameter_specs(NavigatorConfig.describe())]
    return [replace(s, read_only=s.name in NAVIGATOR_START_UP_PARAMETERS) for s in specs]


def navigator_config(values: Mapping[str, Any]) -> NavigatorConfig:
    """Build the validated :class:`NavigatorConfig` from dotted parameter values.

    Raises:
        ConfigError: an unknown key or an invalid value (the message names it).
    """
    flat = {k: plain_parameter_value(v) for k, v in values.items()
            if k not in NAVIGATOR_NODE_PARAMETERS}
    return NavigatorConfig.from_flat(flat)


def navigator_config_update(config: NavigatorConfig, changes: Mapping[str, Any]
                            ) -> NavigatorConfig:
    """Return the configuration after run-time parameter changes (``ros2 param set``).

    Args:
        config: the configuration in use.
        changes: parameter name -> new value (rclpy's own parameters, such as
            ``use_sim_time``, are ignored).

    Raises:
        ConfigError: a start-up parameter (read-only), an unknown name or an invalid
            value (the message names it); the configuration in use is kept.
    """
    flat = config.to_flat()
    for name, value in changes.items():
        if name in RCLPY_PARAMETERS:
            continue
        if name in NAVIGATOR_START_UP_PARAMETERS:
            raise ConfigError(f'parameter {name!r} is read at start-up only (read-only)')
        if name not in flat:
            raise ConfigError(f'unknown parameter {name!r}')
        flat[name] = plain_parameter_value(value)
    return NavigatorConfig.from_flat(flat)


def robot_config(config_file: str) -> RobotConfig:
    """Return the ``robot`` section of the stance server's YAML (the defaults when empty).

    The file is read as the stance server reads it (:func:`.parameters.stance_config_file`:
    its node-level keys such as ``target_frame`` or ``map_topic`` are skipped), and a
    relative ``robot.urdf`` is resolved as the server resolves it, so both nodes load the
    same robot.

    Raises:
        ConfigError: the file cannot be read or is not a valid stance configuration.
    """
    if not config_file:
        return RobotConfig()
    from reachability_ros.core.paths import resolve_data_path
    return resolve_urdf(stance_config_file(config_file).robot, resolve_data_path)


def navigator_launch_parameters(config: str, frame: str = 'map', use_sim_time: str = 'false',
                                camera_info: str = '') -> dict:
    """Return the parameters that ``lekiwi.launch.py navigate:=true`` gives the navigator.

    Args:
        config: the stance server's parameter file (the navigator's ``config_file``).
        frame: the ``target_frame`` launch argument.
        use_sim_time: the ``use_sim_time`` launch argument.
        camera_info: the ``camera_info`` launch argument (a CameraInfo topic, or '').

    Raises:
        ValueError: a ``use_sim_time`` that is not a boolean.
    """
    return {'config_file': str(config), 'target_frame': target_frame(frame),
            'use_sim_time': parse_bool('use_sim_time', use_sim_time),
            'camera_info_topic': str(camera_info).strip()}


@dataclass
class ProposeAnswer:
    """The stance server's answer as plain data.

    Attributes:
        stances: ranked base poses (target frame), best first.
        arms: per stance, its whole-body ``q`` from ``/propose_stance/candidates`` when
            that message was matched to the answer, else None.
        reason: the server's reason when there is no stance ('' otherwise).
        failure: '' (answered), ``'unavailable'`` (no server) or ``'timeout'``.
    """

    stances: list
    arms: list = field(default_factory=list)
    reason: str = ''
    failure: str = ''


@dataclass
class NavOutcome:
    """How one Nav2 navigation ended.

    Attributes:
        status: ``'succeeded'``, ``'failed'`` (aborted, rejected, or canceled by someone
            else), ``'timeout'``, ``'canceled'`` (our cancel), ``'unavailable'`` (no Nav2)
            or ``'shutdown'``.
        error_code: Nav2's ``error_code`` (0 when it gave none).
        error_msg: Nav2's ``error_msg`` or what went wrong.
    """

    status: str
    error_code: int = 0
    error_msg: str = ''


def arms_from_candidates(joint_names: Sequence[str], rows: Sequence[Sequence[float]],
                         names: Sequence[str]) -> list | None:
    """Return the whole-body ``q`` of each ``/propose_stance/candidates`` point (``names`` order).

    Args:
        joint_names: the message's joint names (``base_x, base_y, base_yaw`` + arm).
        rows: the positions of its points, one per ranked stance.
        names: the navigator's robot's joint names, in the order of its ``q``.

    Returns:
        ``(len(names),)`` arrays, or None when a name is missing or a row has another length.
    """
    index = {str(n): i for i, n in enumerate(joint_names)}
    if any(n not in index for n in names) or any(len(r) != len(index) for r in rows):
        return None
    order = [index[n] for n in names]
    return [np.asarray(r, dtype=float)[order] for r in rows]


def report_reason(text: str, stamp: tuple[int, int]) -> str | None:
    """Return the ``reason`` of a ``/propose_stance/report`` JSON if its stamp is ``stamp``.

    Returns:
        The reason ('' when the report has none), or None when the report belongs to
        another answer or is not a report.
    """
    try:
        report = json.loads(text)
        head = report['header']['stamp']
        if (int(head['sec']), int(head['nanosec'])) != tuple(stamp):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return str(report.get('reason') or '')
