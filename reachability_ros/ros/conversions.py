"""Plain-value conversions between ROS message fields and the core's types.

Nothing here imports rclpy or a message package: the stance server reads the
fields of its messages into tuples and floats once, at the boundary, calls the
functions below, and copies their plain results back into messages. This keeps
every decision of the ROS layer testable without ROS.

Frames and units: metres, radians, quaternions ordered (x, y, z, w) as in
``geometry_msgs/Quaternion``. A whole-body configuration ``q`` is
``(base_x, base_y, base_yaw, arm joints...)`` (see :mod:`reachability_ros.core.types`).
"""

from __future__ import annotations

import array
import contextlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from reachability_ros.core.config import StanceConfig
from reachability_ros.core.errors import ConfigError, InvalidRequest, ReachabilityError
from reachability_ros.core.types import BasePose, Grasp, ProposalResult

#: Node-level parameters of the stance server that are not part of :class:`StanceConfig`.
NODE_PARAMETERS = ("config_file", "target_frame", "tf_timeout_s")

#: ``rcl_interfaces/msg/ParameterType`` values, by the type names used in :class:`ParameterSpec`.
PARAMETER_TYPES = {
    "bool": 1, "integer": 2, "double": 3, "string": 4, "byte_array": 5, "bool_array": 6,
    "integer_array": 7, "double_array": 8, "string_array": 9,
}

_INT64_MAX = 2**63 - 1
_FLOAT_MAX = 1.7976931348623157e308

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


# ---------------------------------------------------------------- poses and frames
def normalize_frame_id(frame_id: str) -> str:
    """Strip the leading slash that tf2 rejects (``"/map"`` -> ``"map"``) and blanks."""
    if not isinstance(frame_id, str):
        raise InvalidRequest(f"frame_id must be a string, got {frame_id!r}")
    return frame_id.strip().lstrip("/")


def quaternion_from_yaw(yaw: float) -> Quat:
    """Return the quaternion (x, y, z, w) of a rotation by ``yaw`` rad about +z."""
    half = 0.5 * float(yaw)
    return (0.0, 0.0, math.sin(half), math.cos(half))


def yaw_from_quaternion(q: Sequence[float]) -> float:
    """Return the heading (rad, in [-pi, pi]) of quaternion (x, y, z, w): the yaw of its x axis.

    The quaternion need not be normalized; it is for any rotation, not only
    rotations about z (the heading of the rotated x axis projected on the floor).

    Raises:
        InvalidRequest: non-finite values or a (near) zero quaternion.
    """
    x, y, z, w = (float(v) for v in q)
    if not all(math.isfinite(v) for v in (x, y, z, w)):
        raise InvalidRequest(f"quaternion has non-finite values: {[x, y, z, w]}")
    n2 = x * x + y * y + z * z + w * w
    if n2 < 1e-12:
        raise InvalidRequest("quaternion (0, 0, 0, 0) has no orientation; send a unit "
                             "quaternion (w = 1 for no rotation)")
    # first column of the rotation matrix of the normalized quaternion, times n2
    return math.atan2(2.0 * (x * y + w * z), n2 - 2.0 * (y * y + z * z))


def grasp_from_pose(position: Sequence[float], orientation: Sequence[float],
                    frame_id: str) -> Grasp:
    """Build the core :class:`Grasp` from the fields of a ``geometry_msgs/Pose``.

    Nothing is validated here beyond the number of values: the core validates
    (finite numbers, unit quaternion, height) and raises ``InvalidRequest``.

    Args:
        position: ``(3,)`` x, y, z (m) of the tool frame.
        orientation: ``(4,)`` quaternion (x, y, z, w).
        frame_id: the world frame the pose is expressed in.

    Raises:
        InvalidRequest: not 3 + 4 numbers.
    """
    p = tuple(float(v) for v in position)
    q = tuple(float(v) for v in orientation)
    if len(p) != 3 or len(q) != 4:
        raise InvalidRequest(f"a grasp needs 3 position and 4 quaternion values, got {p}, {q}")
    return Grasp(p, q, frame_id)


def base_pose_from_start(frame_id: str, position: Sequence[float],
                         orientation: Sequence[float]) -> BasePose | None:
    """Read the optional current base pose of a ``GetPlan`` request.

    Args:
        frame_id: the start's frame; empty means "unknown" (no travel term).
        position: ``(3,)`` (z is ignored).
        orientation: ``(4,)`` quaternion (x, y, z, w); only its heading is used.

    Returns:
        The planar pose, or None when ``frame_id`` is empty.

    Raises:
        InvalidRequest: non-finite values or a zero quaternion.
    """
    if not normalize_frame_id(frame_id):
        return None
    x, y = float(position[0]), float(position[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidRequest(f"start position has non-finite values: {[x, y]}")
    return BasePose(x, y, yaw_from_quaternion(orientation))


@dataclass(frozen=True)
class PlanPose:
    """One pose of the response ``nav_msgs/Path``: ``base_footprint`` on the floor."""

    position: Vec3
    orientation: Quat


def plan_poses(result: ProposalResult | None) -> list[PlanPose]:
    """Ranked base poses of a result, best first: ``(x, y, 0)`` and the quaternion of yaw."""
    if result is None:
        return []
    out = []
    for c in result.candidates:
        x, y, yaw = (float(v) for v in np.asarray(c.q, dtype=float)[:3])
        out.append(PlanPose((x, y, 0.0), quaternion_from_yaw(yaw)))
    return out


def trajectory_layout(result: ProposalResult | None,
                      joint_names: Sequence[str] = ()) -> tuple[list[str], list[list[float]]]:
    """Joint names and one position list per candidate for ``trajectory_msgs/JointTrajectory``.

    Args:
        result: the proposal result (None: no candidates).
        joint_names: names to use when there is no result (``base_x, base_y,
            base_yaw`` + the arm joints).

    Returns:
        ``(joint_names, positions)``: ``positions[i]`` is candidate i's ``q``
        (same order as :func:`plan_poses`), each of ``len(joint_names)`` floats.
    """
    if result is None:
        return list(joint_names), []
    names = [str(n) for n in result.joint_names]
    rows = []
    for c in result.candidates:
        q = [float(v) for v in np.asarray(c.q, dtype=float).reshape(-1)]
        if len(q) != len(names):
            raise ValueError(f"candidate has {len(q)} values for {len(names)} joint names")
        rows.append(q)
    return names, rows


# ---------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParameterSpec:
    """A ROS parameter declaration as plain data.

    Attributes:
        name: dotted parameter name (``proposal.top_k``).
        type: one of the keys of :data:`PARAMETER_TYPES`.
        default: default value, already of the declared type.
        description: human-readable description (with the range).
        range: ``(lo, hi)`` for integer and double parameters (open ends filled with
            the type's extreme values), else None.
        read_only: the parameter cannot change after start-up.
    """

    name: str
    type: str
    default: Any
    description: str
    range: tuple | None = None
    read_only: bool = False

    @property
    def type_id(self) -> int:
        """The ``rcl_interfaces/msg/ParameterType`` constant."""
        return PARAMETER_TYPES[self.type]


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        items = list(value)
        if items and all(isinstance(v, bool) for v in items):
            return "bool_array"
        if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return "integer_array"
        if items and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         for v in items):
            return "double_array"
        return "string_array"  # also the type of an empty list
    raise ConfigError(f"config values of type {type(value).__name__} ({value!r}) cannot be "
                      "ROS parameters")


def _coerce(value: Any, kind: str, name: str) -> Any:
    """Convert a config value to the declared parameter type (ints are accepted as doubles)."""
    try:
        if kind == "double":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == "integer":
            if isinstance(value, bool) or int(value) != value:
                raise TypeError
            return int(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind == "string":
            if not isinstance(value, str):
                raise TypeError
            return value
        items = list(value)
        if kind == "double_array":
            return [float(v) for v in items]
        if kind == "integer_array":
            return [int(v) for v in items]
        if kind == "bool_array":
            return [bool(v) for v in items]
        return [str(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"parameter {name!r}: {value!r} is not a {kind}") from None


def parameter_specs(describe: Mapping[str, Mapping[str, Any]] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> list[ParameterSpec]:
    """Derive one parameter declaration per config key.

    Args:
        describe: ``StanceConfig.describe()`` (default: computed here): per dotted
            key its dataclass default (which fixes the parameter type),
            description and range.
        defaults: dotted-key values to use as defaults instead of the dataclass
            ones (e.g. ``load_stance_config(file).to_flat()``).

    Returns:
        Specs in ``describe`` order.

    Raises:
        ConfigError: a default does not fit the key's type.
    """
    describe = StanceConfig.describe() if describe is None else describe
    defaults = defaults or {}
    specs = []
    for name, info in describe.items():
        kind = _type_of(info["default"])
        default = _coerce(defaults.get(name, info["default"]), kind, name)
        rng = info.get("range")
        desc = str(info.get("description", ""))
        prange = None
        if rng is not None and kind in ("integer", "double"):
            lo, hi = rng
            if kind == "integer":
                lo = -_INT64_MAX if lo is None else int(math.ceil(lo))
                hi = _INT64_MAX if hi is None else int(math.floor(hi))
            else:
                lo = -_FLOAT_MAX if lo is None else float(lo)
                hi = _FLOAT_MAX if hi is None else float(hi)
            prange = (lo, hi)
            desc += f" [range {rng[0] if rng[0] is not None else '-inf'}, " \
                    f"{rng[1] if rng[1] is not None else 'inf'}]"
        specs.append(ParameterSpec(name, kind, default, desc, prange))
    return specs


def node_parameter_specs(target_frame: str = "map", tf_timeout_s: float = 1.0,
                         config_file: str = "") -> list[ParameterSpec]:
    """Declarations of the stance server's own parameters (not part of the config)."""
    return [
        ParameterSpec("config_file", "string", config_file,
                      "YAML file (config/lekiwi.yaml layout) read at start-up as the defaults "
                      "of every other parameter; empty = the built-in defaults. Relative paths "
                      "resolve against the package share directory", None, True),
        ParameterSpec("target_frame", "string", target_frame,
                      "frame of the response: the goal is transformed into it with TF, and the "
                      "ranked base poses are expressed in it (its z = 0 plane is the floor)"),
        ParameterSpec("tf_timeout_s", "double", float(tf_timeout_s),
                      "how long to wait for the goal's transform into target_frame (s); "
                      "SIGINT during a request ends the node only after this wait, so keep "
                      "it short (default 1.0) [range 0, 60]", (0.0, 60.0)),
    ]


def plain_parameter_value(value: Any) -> Any:
    """Turn rclpy parameter values (``array.array``, numpy) into plain Python values."""
    if isinstance(value, (array.array, np.ndarray, list, tuple)):
        return [plain_parameter_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def config_from_parameters(values: Mapping[str, Any]) -> StanceConfig:
    """Build and validate the config from dotted parameter values.

    Args:
        values: dotted key -> value (parameters of the node); node-level
            parameters (:data:`NODE_PARAMETERS`) are ignored.

    Raises:
        ConfigError: an unknown key or an invalid value (the message names it).
    """
    flat = {k: plain_parameter_value(v) for k, v in values.items() if k not in NODE_PARAMETERS}
    return StanceConfig.from_flat(flat)


def resolve_config_paths(config: StanceConfig,
                         resolve: Callable[[str], Path]) -> StanceConfig:
    """Resolve the model and URDF paths of a config (e.g. against the package share).

    Args:
        config: the validated config.
        resolve: maps a relative path to an existing absolute one
            (``config_io.resolve_data_path``); it may return the path unchanged.

    Returns:
        The config with ``proposal.model_path`` (and a non-empty ``robot.urdf``)
        made absolute when the file was found.

    Raises:
        ConfigError: a configured model file does not exist.
    """
    flat = config.to_flat()
    model = flat.get("proposal.model_path", "")
    if model:
        p = Path(resolve(model))
        if not p.is_file():
            raise ConfigError(f"proposal.model_path {model!r} not found (looked at {p}); "
                              "train one or clear the parameter to use the model-free sampler")
        flat["proposal.model_path"] = str(p.resolve())
    urdf = flat.get("robot.urdf", "")
    if urdf:
        p = Path(resolve(urdf))
        if p.is_file():
            flat["robot.urdf"] = str(p.resolve())
    return StanceConfig.from_flat(flat)


# ---------------------------------------------------------------- reports
def json_safe(obj: Any) -> Any:
    """Recursively convert to strict-JSON data: numpy to Python, NaN/inf to strings."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray, array.array)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)  # 'nan', 'inf', '-inf'
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def failure_report(reason: str, request: Mapping[str, Any] | None = None,
                   sampler: str = "") -> dict:
    """A report for a request that never reached the pipeline (bad input, TF failure).

    It has the keys of ``core.report.result_to_dict`` so that clients parse one schema.
    """
    return {"ok": False, "reason": reason, "sampler": sampler,
            "request": dict(request) if request is not None else None,
            "candidates": [], "funnel": {}, "timing_ms": {}}


@dataclass
class PoseInput:
    """The fields of a ``geometry_msgs/PoseStamped`` as plain values."""

    frame_id: str
    position: Vec3
    orientation: Quat


def check_raw_goal(position: Sequence[float], orientation: Sequence[float],
                   quaternion_tolerance: float) -> None:
    """Validate a goal pose as received, BEFORE any TF call.

    tf2's ``do_transform_pose`` (Jazzy) turns a zero quaternion into the identity,
    normalizes any other one and raises ``numpy.linalg.LinAlgError`` on NaN, so the
    goal must be checked in its own frame. Same rules and wording as
    ``core.pipeline.validate_grasp`` except the height check, which only makes
    sense in the target frame (the core does it after the transform).

    Args:
        position: ``(3,)`` x, y, z (m).
        orientation: ``(4,)`` quaternion (x, y, z, w).
        quaternion_tolerance: accepted ``| |q| - 1 |`` (``proposal.quaternion_tolerance``).

    Raises:
        InvalidRequest: wrongly sized or non-finite values, or a quaternion whose
            norm is off by more than ``quaternion_tolerance`` (a zero one included).
    """
    try:
        p = [float(v) for v in position]
        q = [float(v) for v in orientation]
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"goal position/orientation must be numbers: {exc}") from None
    if len(p) != 3 or len(q) != 4:
        raise InvalidRequest(f"a goal needs 3 position and 4 quaternion values, got {p}, {q}")
    if not all(math.isfinite(v) for v in p):
        raise InvalidRequest(f"goal position has non-finite values: {p}")
    if not all(math.isfinite(v) for v in q):
        raise InvalidRequest(f"goal orientation has non-finite values: {q}")
    norm = math.sqrt(sum(v * v for v in q))
    if abs(norm - 1.0) > float(quaternion_tolerance):
        raise InvalidRequest(
            f"goal orientation must be a unit quaternion (x, y, z, w); its norm is {norm:.6g} "
            f"(tolerance {quaternion_tolerance}). Normalize it (a zero quaternion has no "
            "orientation)")


def check_raw_start(frame_id: str, position: Sequence[float],
                    orientation: Sequence[float]) -> None:
    """Validate the optional start pose as received, BEFORE any TF call.

    Same rules as :func:`base_pose_from_start` (finite x, y; a finite, non-zero
    quaternion of any norm: only its heading is used). An empty ``frame_id``
    (unknown start) is always accepted.

    Raises:
        InvalidRequest: non-finite values or a zero quaternion.
    """
    if normalize_frame_id(frame_id):
        base_pose_from_start(frame_id, position, orientation)


def is_stamp_zero(sec: int, nanosec: int) -> bool:
    """True for the stamp ``(0, 0)`` that tf2 reads as "the latest transform"."""
    return int(sec) == 0 and int(nanosec) == 0


def retry_with_latest(exc_is_extrapolation: bool, sec: int, nanosec: int) -> bool:
    """Whether a failed stamped TF lookup is retried with the latest transform.

    Only an extrapolation failure (the stamp is older than the TF buffer, ~10 s,
    or newer than its last transform) of a non-zero stamp is retried; a missing
    frame or a broken tree would fail the same way at stamp zero.
    """
    return bool(exc_is_extrapolation) and not is_stamp_zero(sec, nanosec)


def latest_transform_note(what: str, frame: str, target: str, sec: int, nanosec: int,
                          error: str) -> str:
    """The report note saying that ``what`` was transformed with the latest transform."""
    return (f"{what} transformed from '{frame}' to '{target}' with the LATEST transform "
            f"(stamp 0), not at its stamp {int(sec)}.{int(nanosec):09d}: "
            f"{' '.join(str(error).split())}")


def transform_failure_reason(frame: str, target: str, timeout_s: float,
                             exc: BaseException) -> str:
    """Reason of a request whose goal could not be transformed (any exception of tf2).

    A ``tf2_ros.TransformException`` and anything else raised by the transform
    (e.g. ``numpy.linalg.LinAlgError`` from ``tf2_geometry_msgs``) are both a bad
    request or a TF problem, never an internal error.
    """
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return (f"bad request: cannot transform the goal from '{frame}' to '{target}' "
            f"within {timeout_s} s: {text}")


def failure_response(reason: str, joint_names: Sequence[str] = (),
                     request: Mapping[str, Any] | None = None,
                     sampler: str = "") -> "StanceResponse":
    """A failed response that never reached (or crashed in) the core.

    It keeps the joint names (``base_x, base_y, base_yaw`` + arm) so that the
    latched ``JointTrajectory`` has the same layout in every case.
    """
    return StanceResponse(False, reason, [], [str(n) for n in joint_names], [],
                          failure_report(reason, request, sampler), None)


@dataclass
class StanceResponse:
    """Everything the stance server sends back for one request, as plain data.

    Attributes:
        ok: at least one verified stance.
        reason: why not (also the WARN line), "" when ok.
        poses: ranked plan poses, best first (empty on failure).
        joint_names: ``base_x, base_y, base_yaw`` + arm joints.
        positions: one ``q`` per pose, same order.
        report: the JSON report (``result_to_dict`` schema plus ROS fields).
        result: the core result (None when the request never reached the core).
        frustum: ``(K, 2, 3)`` camera frustum segments of the best stance, or None.
    """

    ok: bool
    reason: str
    poses: list = field(default_factory=list)
    joint_names: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    report: dict = field(default_factory=dict)
    result: ProposalResult | None = None
    frustum: np.ndarray | None = None


def propose_response(proposer: Any, goal: PoseInput, start: PoseInput | None = None,
                     rng: np.random.Generator | None = None,
                     lock: threading.Lock | None = None,
                     to_dict: Callable[[ProposalResult], dict] | None = None,
                     frustum: Callable[[Any, np.ndarray], np.ndarray] | None = None
                     ) -> StanceResponse:
    """Run the core for a request already expressed in the target frame.

    Never raises for a bad request: a :class:`ReachabilityError` becomes a
    failed response whose ``reason`` says what is wrong.

    Args:
        proposer: a ``StanceProposer`` (anything with ``propose(grasp, base, rng)``
            returning a :class:`ProposalResult`, and ``robot.joint_names``).
        goal: the grasp, in the target frame.
        start: the current base pose in the target frame, or None / empty frame.
        rng: random generator for this request.
        lock: held around the call to the proposer (requests run concurrently).
        to_dict: result -> report dict (default ``core.report.result_to_dict``).
        frustum: ``(robot, q) -> (K, 2, 3)`` frustum segments of the best stance
            (default ``core.report.frustum_segments``).

    Returns:
        The plain response.
    """
    if to_dict is None:
        from reachability_ros.core.report import result_to_dict as to_dict
    if frustum is None:
        from reachability_ros.core.report import frustum_segments as frustum
    request = {"position": list(goal.position), "orientation": list(goal.orientation),
               "frame_id": goal.frame_id}
    names = list(getattr(getattr(proposer, "robot", None), "joint_names", ()))
    sampler = str(getattr(proposer, "sampler_name", ""))
    try:
        grasp = grasp_from_pose(goal.position, goal.orientation, goal.frame_id)
        base = None
        if start is not None:
            base = base_pose_from_start(start.frame_id, start.position, start.orientation)
        with lock if lock is not None else contextlib.nullcontext():
            result = proposer.propose(grasp, base, rng)
            segments = None
            if result.ok and result.candidates:
                segments = frustum(proposer.robot, np.asarray(result.candidates[0].q))
    except ReachabilityError as exc:
        reason = f"bad request: {exc}"
        return StanceResponse(False, reason, [], names, [],
                              failure_report(reason, request, sampler), None)
    joint_names, positions = trajectory_layout(result)
    report = to_dict(result)
    if report.get("request") is None:
        report["request"] = request
    reason = "" if result.ok else (result.reason or "no feasible stance")
    return StanceResponse(bool(result.ok) and bool(result.candidates), reason,
                          plan_poses(result), joint_names, positions, report, result, segments)
