"""The ``stance_navigator`` node's parameters and launch decisions as plain data (no ROS).

The node's parameters are :data:`NAVIGATOR_NODE_PARAMETERS` (``config_file``: the stance
server's YAML, whose ``robot`` section gives the navigator the same robot model and camera)
plus the dotted fields of :class:`NavigatorConfig` (``max_attempts``,
``arrival.tolerance_m``, ...), declared through :func:`.parameters.parameter_specs` with
their descriptions and ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from reachability_ros.core.arrival import ArrivalConfig
from reachability_ros.core.config import config_field, ConfigSection, RobotConfig

from .parameters import ParameterSpec, parameter_specs, plain_parameter_value

_f = config_field

#: The navigator's parameters that are not part of :class:`NavigatorConfig`.
NAVIGATOR_NODE_PARAMETERS = ('config_file',)


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
    return [ParameterSpec('config_file', 'string', config_file,
                          "the stance server's YAML (config/lekiwi.yaml layout): its robot "
                          'section is the robot model, camera included, of the arrival check; '
                          'empty = the built-in LeKiwi', None, True),
            *parameter_specs(NavigatorConfig.describe())]


def navigator_config(values: Mapping[str, Any]) -> NavigatorConfig:
    """Build the validated :class:`NavigatorConfig` from dotted parameter values.

    Raises:
        ConfigError: an unknown key or an invalid value (the message names it).
    """
    flat = {k: plain_parameter_value(v) for k, v in values.items()
            if k not in NAVIGATOR_NODE_PARAMETERS}
    return NavigatorConfig.from_flat(flat)


def robot_config(config_file: str) -> RobotConfig:
    """Return the ``robot`` section of the stance server's YAML (the defaults when empty).

    Raises:
        ConfigError: the file cannot be read or is not a valid stance configuration.
    """
    if not config_file:
        return RobotConfig()
    from reachability_ros.config_io import load_stance_config
    return load_stance_config(config_file).robot
