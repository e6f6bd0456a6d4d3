"""Robot descriptions of the toy robots, generated in code (URDF text and RobotConfig).

The toys of :mod:`reachability_ros.evaluation.toys` get a URDF that
:class:`~reachability_ros.core.robot.WholeBodyModel` loads with its planar root, so they
run through the same forward kinematics and visibility code as the LeKiwi. Every toy has
a base ``base_footprint``, a tool frame ``tool_frame`` and a front camera on the base
(5 cm up, looking along +x; optical frame ``toy_camera_optical_frame``).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..core.config import CameraConfig, RobotConfig
from ..core.errors import ConfigError

TOY_BASE_FRAME = "base_footprint"
TOY_TOOL_FRAME = "tool_frame"
TOY_CAMERA_FRAME = "toy_camera_optical_frame"
TOY_ARM_JOINTS = ("shoulder", "elbow")


def urdf_header(name: str, base_radius: float) -> list[str]:
    """Return the URDF lines of the base link and a front camera on it (optical: z forward).

    Args:
        name: robot name.
        base_radius: radius of the base's visual cylinder (m); the camera sits on its rim.
    """
    r = repr(float(base_radius))
    return [
        '<?xml version="1.0"?>',
        f'<robot name="{name}">',
        f'  <link name="{TOY_BASE_FRAME}">',
        '    <visual><geometry>',
        f'      <cylinder radius="{r}" length="0.02"/>',
        '    </geometry></visual>',
        '  </link>',
        '  <link name="toy_camera_link"/>',
        '  <joint name="toy_camera_joint" type="fixed">',
        f'    <parent link="{TOY_BASE_FRAME}"/><child link="toy_camera_link"/>',
        f'    <origin xyz="{r} 0 0.05" rpy="0 0 0"/>',
        '  </joint>',
        f'  <link name="{TOY_CAMERA_FRAME}"/>',
        '  <joint name="toy_camera_optical_joint" type="fixed">',
        f'    <parent link="toy_camera_link"/><child link="{TOY_CAMERA_FRAME}"/>',
        f'    <origin xyz="0 0 0" rpy="{-math.pi / 2!r} 0 {-math.pi / 2!r}"/>',
        '  </joint>',
    ]


def urdf_tool_tail(parent: str, length: str) -> list[str]:
    """Return the URDF lines of the tool frame ``length`` m along ``parent``'s x, and the end.

    Args:
        parent: link that carries the tool frame.
        length: offset along the link's x (m), as URDF text.
    """
    return [
        f'  <link name="{TOY_TOOL_FRAME}"/>',
        '  <joint name="tool_joint" type="fixed">',
        f'    <parent link="{parent}"/><child link="{TOY_TOOL_FRAME}"/>',
        f'    <origin xyz="{length} 0 0" rpy="0 0 0"/>',
        '  </joint>',
        '</robot>',
    ]


def write_urdf(text: str, directory: str | Path, filename: str) -> Path:
    """Write ``text`` to ``directory / filename`` and return the path.

    Raises:
        ConfigError: ``directory`` does not exist.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"directory {str(d)!r} for the toy URDF does not exist")
    path = d / filename
    path.write_text(text)
    return path


def toy_robot_config(name: str, path: Path, arm_joints: tuple[str, ...],
                     reach_m: float) -> RobotConfig:
    """Return the :class:`RobotConfig` of a toy URDF written at ``path``.

    The tool frame is the only link excluded from occlusion; ``reach_m`` is the toy's ``R``.

    Raises:
        ConfigError: ``reach_m`` is outside the range ``RobotConfig.reach_m`` accepts.
    """
    return RobotConfig(
        name=name, urdf=str(path), base_frame=TOY_BASE_FRAME, tool_frame=TOY_TOOL_FRAME,
        arm_joints=arm_joints, occlusion_exclude_links=(TOY_TOOL_FRAME,), reach_m=reach_m,
        camera=CameraConfig(frame=TOY_CAMERA_FRAME))
