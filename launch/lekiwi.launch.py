"""Start the reachability stance server for the LeKiwi (and optionally RViz).

Usage::

    ros2 launch reachability_ros lekiwi.launch.py
    ros2 launch reachability_ros lekiwi.launch.py model:=models/lekiwi_flow.onnx \
        target_frame:=map use_rviz:=true

Launch arguments:

- ``config``: parameter file (default: the package's ``config/lekiwi.yaml``);
  it is both the node's ROS parameter file and its ``config_file`` (checked
  for unknown keys by the config dataclass);
- ``model``: ONNX sampler file; empty (default) keeps the config's
  ``proposal.model_path``. Relative paths resolve against the package share;
- ``target_frame``: frame of the response (default ``map``);
- ``use_rviz``: also start RViz with ``config/lekiwi.rviz`` (default false).
  RViz gets ``-f <target_frame>`` (rviz2's ``--fixed-frame`` option), which
  overrides the ``Fixed Frame: map`` saved in ``config/lekiwi.rviz``, so the
  markers show in the same frame as the response.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "reachability_ros"


def _target_frame(context) -> str:
    """The ``target_frame`` argument as the node reads it (blank and leading '/' dropped)."""
    return LaunchConfiguration("target_frame").perform(context).strip().lstrip("/") or "map"


def _stance_server(context, *args, **kwargs):
    """Build the node once the launch arguments are known (empty ``model`` = no override)."""
    config = LaunchConfiguration("config").perform(context)
    model = LaunchConfiguration("model").perform(context).strip()
    # plain str values: launch_ros writes them as YAML strings, so they stay strings
    overrides = {"config_file": config, "target_frame": _target_frame(context)}
    if model:
        overrides["proposal.model_path"] = model
    return [Node(
        package=PACKAGE,
        executable="stance_server",
        name="stance_server",
        output="screen",
        emulate_tty=True,
        parameters=[config, overrides],
    )]


def _rviz(context, *args, **kwargs):
    """RViz with the package's display config and the fixed frame set to ``target_frame``."""
    rviz_config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "lekiwi.rviz"])
    return [Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", rviz_config, "-f", _target_frame(context)],
        output="screen",
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, the stance server and the optional RViz."""
    default_config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "lekiwi.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument(
            "model", default_value="",
            description="ONNX sampler model; empty = the config's proposal.model_path"),
        DeclareLaunchArgument(
            "config", default_value=default_config,
            description="parameter file of the stance server (config/lekiwi.yaml layout)"),
        DeclareLaunchArgument(
            "target_frame", default_value="map",
            description="frame of the returned base poses; goals are transformed into it"),
        DeclareLaunchArgument(
            "use_rviz", default_value="false",
            description="also start RViz showing /propose_stance/markers"),
        OpaqueFunction(function=_stance_server),
        OpaqueFunction(function=_rviz),
    ])
