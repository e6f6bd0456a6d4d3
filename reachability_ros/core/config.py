"""Configuration dataclasses: every default, description and validation.

One place owns the robot's and the proposal pipeline's settings. The YAML files
in ``config/`` (ROS parameter-file layout), the ROS parameters of the service
node and the CLI all derive from these classes: ROS parameter names are the
dotted field paths (``robot.camera.hfov_deg``), and each field's description
and range travel in its ``metadata``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .paths import PACKAGE_DIR, resolve_data_path

DEFAULT_URDF = PACKAGE_DIR / "description" / "lekiwi.urdf"

ARM_JOINTS = (
    "arm_shoulder_pan",
    "arm_shoulder_lift",
    "arm_elbow_flex",
    "arm_wrist_flex",
    "arm_wrist_roll",
)
BASE_JOINTS = ("base_x", "base_y", "base_yaw")


def config_field(default, description: str, lo: float | None = None, hi: float | None = None,
                 **kw):
    """Declare a config field with its description and optional closed range."""
    meta = {"description": description}
    if lo is not None or hi is not None:
        meta["range"] = (lo, hi)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


_f = config_field  # a short local name for the many declarations below


_KINDS = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple}


def _section_type(f: dataclasses.Field) -> type | None:
    """The config section class of a field whose value is itself a section, else None."""
    factory = f.default_factory
    return factory if isinstance(factory, type) and issubclass(factory, ConfigSection) else None


def _checked(owner: str, f: dataclasses.Field, value: Any) -> Any:
    """Return ``value`` as the field's declared type, or raise a ConfigError that names it.

    ``int`` fields take integers (and floats with an integral value, as YAML and ROS may
    write them); ``float`` fields take any real number; ``str`` and ``bool`` fields only
    their own type; ``tuple`` fields a list or tuple of strings.
    """
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    name = f"{owner}.{f.name}"
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise ConfigError(f"{name} must be an integer, got {value!r}")
                value = int(value)
            return value
        return float(value)
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    if kind == "tuple":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of strings, got {value!r}")
        return tuple(value)
    return value


class ConfigSection:
    """Base of every config dataclass: type and range validation, dict and dotted views.

    A field's description and optional closed range travel in its ``metadata`` (see
    :func:`config_field`); a field whose default factory is a ``ConfigSection`` is a nested
    section.
    Values are checked against the declared type (``int``, ``float``, ``str``, ``bool``,
    ``tuple`` of strings) and range when the dataclass is built.
    """

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _section_type(f) is not None:
                if not isinstance(value, ConfigSection):
                    raise ConfigError(f"{owner}.{f.name} must be a mapping, got {value!r}")
                continue
            checked = _checked(owner, f, value)
            if checked is not value:
                object.__setattr__(self, f.name, checked)
                value = checked
            rng = f.metadata.get("range")
            if rng is None:
                continue
            lo, hi = rng
            if not math.isfinite(value) or (lo is not None and value < lo) or (
                    hi is not None and value > hi):
                raise ConfigError(
                    f"{owner}.{f.name} = {value!r} is outside [{lo}, {hi}]: "
                    f"{f.metadata['description']}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None):
        """Build from a nested mapping; unknown keys are an error (typos must not pass)."""
        data = dict(data or {})
        kwargs = {}
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(
                    f"unknown {cls.__name__} key {key!r}; known keys: {sorted(names)}")
            sub = _section_type(names[key])
            if sub is not None:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{cls.__name__}.{key} must be a mapping, got {value!r}")
                value = sub.from_dict(value)
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]):
        """Build from dotted keys, e.g. ``{"robot.camera.hfov_deg": 70.0}``."""
        nested: dict[str, Any] = {}
        for key, value in flat.items():
            node = nested
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{key!r}: {p!r} is a value, not a section")
            node[parts[-1]] = value
        return cls.from_dict(nested)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain-data view (tuples as lists), YAML/JSON ready."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, ConfigSection) else (
                list(v) if isinstance(v, tuple) else v)
        return out

    def to_flat(self, prefix: str = "") -> dict[str, Any]:
        """Dotted-key view, the ROS parameter names."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            key = prefix + f.name
            if isinstance(v, ConfigSection):
                out.update(v.to_flat(key + "."))
            else:
                out[key] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def describe(cls, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Per dotted key: default, description and range (for ROS descriptors and docs)."""
        out = {}
        default = cls()
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            sub = _section_type(f)
            if sub is not None:
                out.update(sub.describe(key + "."))
                continue
            v = getattr(default, f.name)
            out[key] = {"default": list(v) if isinstance(v, tuple) else v,
                        "description": f.metadata.get("description", ""),
                        "range": f.metadata.get("range")}
        return out


@dataclass(frozen=True)
class CameraConfig(ConfigSection):
    """Pinhole camera intrinsics and range.

    Either the field of view (``hfov_deg`` with the image size; square pixels)
    or explicit ``fx, fy, cx, cy`` (all > 0) define the frustum.
    """

    frame: str = _f("front_camera_optical_frame", "optical frame of the camera (z = view)")
    width: int = _f(640, "image width (px)", 1, 100000)
    height: int = _f(480, "image height (px)", 1, 100000)
    hfov_deg: float = _f(
        70.0, "horizontal field of view (deg). ASSUMPTION: the LeKiwi front camera's FOV is "
        "not published; 70 deg at 640x480 is a default to calibrate", 1.0, 179.0)
    fx: float = _f(0.0, "focal length x (px); 0 = derive from hfov_deg", 0.0, None)
    fy: float = _f(0.0, "focal length y (px); 0 = same as fx", 0.0, None)
    cx: float = _f(0.0, "principal point x (px); 0 = image centre", 0.0, None)
    cy: float = _f(0.0, "principal point y (px); 0 = image centre", 0.0, None)
    near_m: float = _f(0.05, "nearest distance along the optical axis that is in focus (m)",
                       0.0, 100.0)
    far_m: float = _f(1.5, "farthest distance along the optical axis that is useful (m)",
                      0.0, 1000.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.far_m <= self.near_m:
            raise ConfigError(f"camera far_m={self.far_m} must exceed near_m={self.near_m}")

    def intrinsics(self) -> tuple[float, float, float, float]:
        """Return (fx, fy, cx, cy) in pixels."""
        fx = self.fx or (0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2.0))
        fy = self.fy or fx
        cx = self.cx or 0.5 * self.width
        cy = self.cy or 0.5 * self.height
        return fx, fy, cx, cy

    def frustum_tangents(self) -> tuple[float, float, float, float]:
        """Return (left, right, up, down) tangents of the frustum's side planes (all > 0)."""
        fx, fy, cx, cy = self.intrinsics()
        return cx / fx, (self.width - cx) / fx, cy / fy, (self.height - cy) / fy


@dataclass(frozen=True)
class RobotConfig(ConfigSection):
    """The robot description and the frames and joints the planner uses."""

    name: str = _f("lekiwi", "robot name; stored in model metadata and checked at load")
    urdf: str = _f("", "URDF path; empty = the package's own LeKiwi description. A relative "
                   "path is looked up in the working directory, then in the package's share "
                   "directory")
    base_frame: str = _f("base_footprint", "root frame of the base, on the floor, +x forward: "
                         "answers give its pose, and the footprint radius is measured around "
                         "it")
    tool_frame: str = _f("gripper_frame_link", "tool frame; a grasp is its desired pose")
    arm_joints: tuple = _f(ARM_JOINTS, "arm joint names, in the order of the configuration")
    occlusion_exclude_links: tuple = _f(
        ("gripper_link", "moving_jaw_so101_v1_link", "wrist_camera_link", "front_camera_link"),
        "links whose collision geometry never counts as occluding the tool (the gripper "
        "itself, the camera body)")
    reach_m: float = _f(0.5, "reach scale R (m) that normalizes base offsets in the stance "
                        "features; stored in model metadata", 0.05, 10.0)
    camera: CameraConfig = field(default_factory=CameraConfig,
                                 metadata={"description": "front camera"})

    def urdf_path(self) -> Path:
        """Resolve the URDF path (empty means the packaged LeKiwi description)."""
        if not self.urdf:
            return DEFAULT_URDF
        p = resolve_data_path(self.urdf)
        if not p.exists():
            raise ConfigError(f"robot.urdf {self.urdf!r} does not exist (resolved to {p})")
        return p

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.arm_joints:
            # toy robots may have no arm; nothing to check
            return
        if len(set(self.arm_joints)) != len(self.arm_joints):
            raise ConfigError(f"robot.arm_joints has duplicates: {self.arm_joints!r}")


@dataclass(frozen=True)
class ProposalConfig(ConfigSection):
    """Settings of the stance proposal pipeline (``core.pipeline``)."""

    sampler: str = _f("auto", "proposal sampler: 'auto' (the ONNX model if model_path is set, "
                      "else the exact grid), 'model', 'grid' or 'rejection'")
    model_path: str = _f("models/lekiwi_manifold.onnx", "ONNX sampler file; a relative path is "
                         "looked up in the working directory, then in the package's share "
                         "directory; empty = no model")
    n_samples: int = _f(256, "proposals drawn per request", 1, 1_000_000)
    top_k: int = _f(10, "ranked stances returned", 1, 1000)
    set_samples: int = _f(1024, "proposals drawn per request with alternatives (a grasp set), "
                          "split evenly over its grasps (each gets at most n_samples; a "
                          "symmetric grasp as many per flip)", 1, 1_000_000)
    seed: int = _f(0, "seed of the request's random generator (noise for the sampler, "
                   "perturbations for robustness)", 0, 2**31 - 1)
    # request validation
    quaternion_tolerance: float = _f(1e-3, "accepted | |q| - 1 | of a grasp quaternion", 0.0, 0.5)
    min_height_m: float = _f(-0.05, "lowest accepted grasp height above the floor (m)",
                             -10.0, 10.0)
    max_height_m: float = _f(1.0, "highest accepted grasp height above the floor (m)",
                             -10.0, 100.0)
    # filters and refinement
    coarse_position_tol_m: float = _f(0.03, "raw proposals farther than this from the grasp "
                                      "are dropped before refinement (m)", 0.0, 10.0)
    coarse_orientation_tol_deg: float = _f(15.0, "same, orientation (deg)", 0.0, 180.0)
    refine_position_tol_m: float = _f(1e-4, "refined stances must reach the grasp to this (m)",
                                      0.0, 0.1)
    refine_orientation_tol_deg: float = _f(0.05, "refined orientation tolerance (deg)", 0.0, 10.0)
    refinement: str = _f("auto", "refinement of approximate proposals: 'exact' (read the "
                         "manifold coordinates, solve in closed form), 'numerical' "
                         "(Levenberg-Marquardt on all joints) or 'auto' (exact when the "
                         "description has the closed form)")
    refine_iterations: int = _f(30, "maximum Levenberg-Marquardt iterations", 0, 1000)
    min_visibility_margin_m: float = _f(0.0, "required visibility margin (m); > 0 keeps the "
                                        "target away from the frustum edges and occluders",
                                        -1.0, 1.0)
    # robustness: the ball of feasible configurations
    robustness_samples: int = _f(16, "perturbed base poses per stance", 0, 10000)
    base_sigma_xy_m: float = _f(0.03, "navigation error, std of base x and y (m)", 0.0, 1.0)
    base_sigma_yaw_deg: float = _f(3.0, "navigation error, std of base yaw (deg)", 0.0, 90.0)
    grasp_tolerance_m: float = _f(0.01, "a perturbed base still counts if the arm-only solve "
                                  "gets the tool this close (m)", 1e-6, 1.0)
    grasp_tolerance_deg: float = _f(5.0, "same, orientation (deg)", 1e-4, 180.0)
    robustness_candidates: int = _f(0, "stances (best by the other terms) whose linearized "
                                    "robustness is measured before the diverse top-k (0: none; "
                                    "the returned stances always get the nonlinear measure)",
                                    0, 100000)
    robustness_iterations: int = _f(2, "Levenberg-Marquardt steps of the arm-only re-solve "
                                    "that measures the returned stances' robustness", 0, 100)
    # ranking (score = sum of weight * term, terms documented in core/ranking.py)
    w_visibility: float = _f(1.0, "weight of the visibility margin term", 0.0, 1e6)
    w_manipulability: float = _f(1.0, "weight of the manipulability term", 0.0, 1e6)
    w_limits: float = _f(1.0, "weight of the joint-limit margin term", 0.0, 1e6)
    w_robustness: float = _f(2.0, "weight of the robustness term", 0.0, 1e6)
    w_pose_error: float = _f(1.0, "weight of the pose error penalty", 0.0, 1e6)
    w_travel: float = _f(0.5, "weight of the travel distance penalty (per m, with start pose)",
                         0.0, 1e6)
    w_turn: float = _f(0.1, "weight of the turn penalty (per rad, with start pose)", 0.0, 1e6)
    nms_min_distance_m: float = _f(0.05, "ranked stances closer than this in x, y ...", 0.0, 10.0)
    nms_min_yaw_deg: float = _f(15.0, "... and this in yaw are duplicates (keep the best)",
                                0.0, 360.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_height_m <= self.min_height_m:
            raise ConfigError(f"proposal.max_height_m = {self.max_height_m} must exceed "
                              f"proposal.min_height_m = {self.min_height_m}")


def parse_footprint(text: str) -> tuple[tuple[float, float], ...]:
    """Parse a Nav2 ``footprint`` string, ``"[[x, y], [x, y], ...]"`` (m, base frame).

    The format of Nav2's costmap parameter ``footprint`` (a string: a list of at least
    three ``[x, y]`` points). An empty string or ``"[]"`` means no polygon (the circle
    of ``world.robot_radius_m`` is used).

    Returns:
        The polygon's vertices, or ``()``.

    Raises:
        ConfigError: not that format, fewer than three points, non-finite numbers, or a
            polygon without area.
    """
    import json
    text = text.strip()
    if text in ("", "[]"):
        return ()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    ok = isinstance(data, list) and all(
        isinstance(p, list) and len(p) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in data)
    if not ok:
        raise ConfigError(f"world.footprint {text!r} must read [[x, y], [x, y], ...] (metres, "
                          "as Nav2's footprint parameter), or be empty for a circle")
    points = tuple((float(x), float(y)) for x, y in data)
    if len(points) < 3:
        raise ConfigError(f"world.footprint {text!r} needs at least 3 points")
    if not all(math.isfinite(v) for p in points for v in p):
        raise ConfigError(f"world.footprint {text!r} has non-finite values")
    area = 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in
                     zip(points, points[1:] + points[:1]))
    if abs(area) < 1e-6:
        raise ConfigError(f"world.footprint {text!r} has no area")
    return points


@dataclass(frozen=True)
class WorldConfig(ConfigSection):
    """How the robot must clear the world: the map's cells, 3-D boxes, the ranking term.

    The world itself (an occupancy grid, boxes) is an input (``--map``, ``--obstacles``,
    the ROS topics); these settings say how it is used (``core/world.py``). The footprint
    follows Nav2's costmap conventions (``robot_radius`` or ``footprint``, plus
    ``footprint_padding``).
    """

    robot_radius_m: float = _f(0.0, "radius of the base footprint (m), Nav2's robot_radius; 0 = "
                               "measured from the description: the horizontal extent of the "
                               "base's collision geometry, wheels included", 0.0, 10.0)
    footprint: str = _f("", "base footprint polygon in the base frame, Nav2's format "
                        "'[[x, y], [x, y], ...]' (m); empty = the circle of robot_radius_m")
    footprint_padding_m: float = _f(0.01, "the footprint must stay this far from blocked cells "
                                    "(m), Nav2's footprint_padding", 0.0, 1.0)
    cost_threshold: int = _f(100, "grid cells with a value >= this (0-100 scale) block the "
                             "base; 100 = lethal only (a Nav2 costmap's 99 marks cells where "
                             "Nav2's own footprint would touch an obstacle: counting them "
                             "inflates twice)", 1, 100)
    unknown_is_blocked: bool = _f(True, "unknown cells (-1), and the outside of the map, "
                                  "block the base")
    box_padding_m: float = _f(0.01, "no part of the robot may come closer than this to a box "
                              "(m)", 0.0, 1.0)
    occlusion_padding_m: float = _f(0.01, "the front camera's line of sight to the gripper must "
                                    "pass at least this far from every box (m)", 0.0, 1.0)
    clearance_cap_m: float = _f(0.2, "clearances beyond this score the same (m)", 0.001, 10.0)
    w_clearance: float = _f(1.0, "weight of the clearance term: w * min(clearance, cap) / cap",
                            0.0, 1e6)
    min_feasible: int = _f(3, "when the scene leaves fewer feasible stances than this, the "
                           "exact grid is searched too (fallback_samples more proposals); 0 = "
                           "never", 0, 1000)
    fallback_samples: int = _f(4096, "proposals of the exact-grid fallback", 1, 1_000_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_footprint(self.footprint)


@dataclass(frozen=True)
class StanceConfig(ConfigSection):
    """Everything the stance service needs: the robot, the proposal and world settings."""

    robot: RobotConfig = field(default_factory=RobotConfig,
                               metadata={"description": "robot description"})
    proposal: ProposalConfig = field(default_factory=ProposalConfig,
                                     metadata={"description": "proposal pipeline"})
    world: WorldConfig = field(default_factory=WorldConfig,
                               metadata={"description": "obstacles: map cells and boxes"})
