"""Start the reachability stance server for the LeKiwi (and optionally RViz).

Usage::

    ros2 launch reachability_ros lekiwi.launch.py
    ros2 launch reachability_ros lekiwi.launch.py sampler:=grid model:=none use_rviz:=true
    ros2 launch reachability_ros lekiwi.launch.py model:=runs/tiny/model.onnx use_sim_time:=true
    ros2 launch reachability_ros lekiwi.launch.py navigate:=true camera_info:=/camera/camera_info

Launch arguments (``ros2 launch reachability_ros lekiwi.launch.py --show-args``):

- ``config``: parameter file (default: the package's ``config/lekiwi.yaml``); it is
  both the node's ROS parameter file and its ``config_file`` (checked for unknown
  keys by the config dataclass);
- ``model``: empty (default) keeps the config's ``proposal.model_path``; ``none``
  runs without a model (sampler ``auto`` then uses the exact grid); else the
  ONNX file (relative paths: the working directory, then the package share);
- ``sampler``: empty (default) keeps the config's ``proposal.sampler``; else
  ``auto``, ``model``, ``grid`` or ``rejection``;
- ``target_frame``: frame of the response (default ``map``);
- ``use_sim_time``: ``true`` to run on ``/clock`` (default ``false``);
- ``use_rviz``: also start RViz with ``config/lekiwi.rviz`` (default ``false``): the
  proposals, the camera frustum and the robot at the best stance, drawn from its
  collision primitives (namespace ``robot`` of ``/propose_stance/markers``). RViz
  gets ``-f <target_frame>``, which overrides the file's ``Fixed Frame: map``;
- ``navigate``: also start the ``stance_navigator`` node (default ``false``): the action
  ``/navigate_to_grasp`` (``nav2_msgs/action/NavigateToPose``) that takes the base to a
  stance with Nav2 and commands the arm (needs ``nav2_msgs`` and a running Nav2);
- ``camera_info``: a ``sensor_msgs/CameraInfo`` topic whose intrinsics replace the
  configured camera in both nodes' visibility checks (default empty: none).

The decisions live in :mod:`reachability_ros.ros.launch_args` (tested without ROS).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from reachability_ros.ros.launch_args import (parse_bool, rviz_arguments, SAMPLERS,
                                              stance_server_parameters)
from reachability_ros.ros.navigator_io import navigator_launch_parameters

PACKAGE = 'reachability_ros'
ARGUMENTS = ('config', 'model', 'sampler', 'target_frame', 'use_sim_time', 'use_rviz',
             'navigate', 'camera_info')


def _arg(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _typed(values: dict) -> dict:
    """Mark string values as strings: launch reads plain ones as YAML ('' would be null)."""
    return {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v
            for k, v in values.items()}


def _stance_server(context, *args, **kwargs):
    """Build the node once the launch arguments are known."""
    config = _arg(context, 'config')
    overrides = stance_server_parameters(config, _arg(context, 'model'),
                                         _arg(context, 'sampler'),
                                         _arg(context, 'target_frame'),
                                         _arg(context, 'use_sim_time'))
    overrides['camera_info_topic'] = _arg(context, 'camera_info').strip()
    return [Node(
        package=PACKAGE,
        executable='stance_server',
        name='stance_server',
        output='screen',
        emulate_tty=True,
        parameters=[config, _typed(overrides)],
    )]


def _rviz(context, *args, **kwargs):
    """Start RViz with the package's display config, fixed frame ``target_frame``."""
    if not parse_bool('use_rviz', _arg(context, 'use_rviz')):
        return []
    rviz_config = PathJoinSubstitution(
        [FindPackageShare(PACKAGE), 'config', 'lekiwi.rviz']).perform(context)
    return [Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=rviz_arguments(rviz_config, _arg(context, 'target_frame')),
        parameters=[{'use_sim_time': parse_bool('use_sim_time',
                                                _arg(context, 'use_sim_time'))}],
        output='screen',
    )]


def _navigator(context, *args, **kwargs):
    """Start the stance navigator when ``navigate:=true``."""
    if not parse_bool('navigate', _arg(context, 'navigate')):
        return []
    params = navigator_launch_parameters(_arg(context, 'config'), _arg(context, 'target_frame'),
                                         _arg(context, 'use_sim_time'),
                                         _arg(context, 'camera_info'))
    return [Node(package=PACKAGE, executable='stance_navigator', name='stance_navigator',
                 output='screen', emulate_tty=True, parameters=[_typed(params)])]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, the stance server and the optional RViz."""
    default_config = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'lekiwi.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument(
            'config', default_value=default_config,
            description='parameter file of the stance server (config/lekiwi.yaml layout)'),
        DeclareLaunchArgument(
            'model', default_value='',
            description="ONNX sampler model; empty = the config's proposal.model_path; "
                        'none = no model (sampler auto then uses the exact grid)'),
        DeclareLaunchArgument(
            'sampler', default_value='', choices=['', *SAMPLERS],
            description="proposal sampler; empty = the config's proposal.sampler"),
        DeclareLaunchArgument(
            'target_frame', default_value='map',
            description='frame of the returned base poses; goals are transformed into it'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', choices=['true', 'false'],
            description='use the /clock topic (simulation) for stamps'),
        DeclareLaunchArgument(
            'use_rviz', default_value='false', choices=['true', 'false'],
            description='also start RViz showing /propose_stance/markers and the robot'),
        DeclareLaunchArgument(
            'navigate', default_value='false', choices=['true', 'false'],
            description='also start the stance_navigator node (/navigate_to_grasp)'),
        DeclareLaunchArgument(
            'camera_info', default_value='',
            description='sensor_msgs/CameraInfo topic of the front camera; empty = the '
                        "config's robot.camera"),
        OpaqueFunction(function=_stance_server),
        OpaqueFunction(function=_rviz),
        OpaqueFunction(function=_navigator),
    ])
