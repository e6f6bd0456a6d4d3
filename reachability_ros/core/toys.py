"""Analytic toy robots of seed 000 with closed-form solution sets (numpy only).

Two planar toys serve as test fixtures and as ground truth for evaluating
stance samplers:

* :class:`StickToy` (seed 000, section 6, "v1"): a disk base ``(x, y, theta)``
  with a rigid stick of length ``L``. Hand ``f(Q) = (x, y) + L (cos theta,
  sin theta)``; the solutions of a target ``H`` form the circle
  ``{(h_x - L cos t, h_y - L sin t, t) : t in [0, 2 pi)}``.
* :class:`TwoLinkToy` (seed 000, sections 4-5, "v2"): a disk base ``(x, y, psi)``
  with a rotary two-link arm (shoulder at the base centre, links ``L1, L2``,
  revolute joints about the vertical with limits). Hand ``f(Q) = (x, y) +
  R(psi) (L1 c1 + L2 c12, L1 s1 + L2 s12)``.

Both have a URDF generated in code (:meth:`StickToy.urdf`, :meth:`TwoLinkToy.urdf`)
that :class:`~reachability_ros.core.robot.WholeBodyModel` loads with its planar
root, so the toys run through the same FK code as the LeKiwi; their whole-body
configuration ``q`` *is* the toy configuration ``Q`` (``(x, y, theta)``, resp.
``(x, y, psi, theta1, theta2)``). Everything lies in the floor plane ``z = 0``.

The data pipeline is seed 000 section 5.1 and the features those of section 4.1-4.2
(v2.1): ``Q_feat = ((x - h_x)/R, (y - h_y)/R, cos psi, sin psi, cos t1, sin t1,
cos t2, sin t2)`` with ``R = L1 + L2``; the condition ``C_feat`` is the zero
vector (section 4.1, "dCond"), because the features already hold ``H``.

Notes on the seed:

* Section 5.1 step 4(c) writes ``theta1 = atan2(u, v) - ...``; with
  ``atan2(y, x)`` conventions (numpy's) the shoulder angle of the local target
  ``(u, v)`` is ``atan2(v, u)``, which is what is used here (the tests check
  the hand hits the target to 1e-9).
* The metrics (section 6.4) do not say how the seed's table was pooled. The
  nearest-neighbour row (``max_gap = 2 pi`` with ``kl_to_uniform = 0.019``)
  is only consistent with: ``max_gap`` per target (all samples of one ``H``)
  and ``kl_to_uniform`` of the histogram of implied angles pooled over all
  targets and samples. :func:`toy_metrics` does that and also reports the
  per-target KL (``coverage/kl_to_uniform_per_h``), which shows collapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .config import CameraConfig, RobotConfig
from .errors import ConfigError, InvalidRequest

TOY_FEATURIZATION_VERSION = "toy-v2.1"
TOY_BASE_FRAME = "base_footprint"
TOY_TOOL_FRAME = "tool_frame"
TOY_CAMERA_FRAME = "toy_camera_optical_frame"
TOY_ARM_JOINTS = ("shoulder", "elbow")
TWO_PI = 2.0 * math.pi

#: keys of seed 000's result table (section 5.3.1), in its order
SEED_METRIC_KEYS = (
    "hand_err/mean",
    "hand_err/median",
    "hand_err/p95",
    "coverage/max_gap_mean",
    "coverage/max_gap_p95",
    "coverage/kl_to_uniform",
    "stochasticity/var_Q_fixed_H",
)

#: seed 000 section 5.3.1, "Results: NNDeterministicLookup"
SEED_NN_ROW = {
    "hand_err/mean": 0.014401,
    "hand_err/median": 0.013445,
    "hand_err/p95": 0.028278,
    "coverage/max_gap_mean": 6.283185,
    "coverage/max_gap_p95": 6.283185,
    "coverage/kl_to_uniform": 0.019053,
    "stochasticity/var_Q_fixed_H": 0.0,
}


# ----------------------------------------------------------------- validation
def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0.0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _as_batch(a: np.ndarray, width: int, what: str) -> np.ndarray:
    """Return ``a`` as a finite float array ``(N, width)`` (a 1-D row is promoted)."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != width:
        raise InvalidRequest(f"{what} must have shape (N, {width}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidRequest(f"{what} must be finite, got {a[~np.isfinite(a)][:3]}")
    return a


def _planar_pose(x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Homogeneous ``(N, 4, 4)`` poses in the floor plane."""
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.zeros(np.shape(x) + (4, 4))
    T[..., 0, 0], T[..., 0, 1], T[..., 1, 0], T[..., 1, 1] = c, -s, s, c
    T[..., 2, 2] = T[..., 3, 3] = 1.0
    T[..., 0, 3], T[..., 1, 3] = x, y
    return T


# ---------------------------------------------------------------- URDF text
def _urdf_header(name: str, base_radius: float) -> list[str]:
    """Base link and a front camera on it (optical frame: z forward, x right)."""
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


def _urdf_tool_tail(parent: str, length: str) -> list[str]:
    """URDF lines of the tool frame ``length`` metres along the parent link's x, closing the robot."""
    return [
        f'  <link name="{TOY_TOOL_FRAME}"/>',
        '  <joint name="tool_joint" type="fixed">',
        f'    <parent link="{parent}"/><child link="{TOY_TOOL_FRAME}"/>',
        f'    <origin xyz="{length} 0 0" rpy="0 0 0"/>',
        '  </joint>',
        '</robot>',
    ]


def _write_urdf(text: str, directory: str | Path, filename: str) -> Path:
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"directory {str(d)!r} for the toy URDF does not exist")
    path = d / filename
    path.write_text(text)
    return path


def _toy_robot_config(name: str, path: Path, arm_joints: tuple[str, ...],
                      reach_m: float) -> RobotConfig:
    return RobotConfig(
        name=name, urdf=str(path), base_frame=TOY_BASE_FRAME, tool_frame=TOY_TOOL_FRAME,
        arm_joints=arm_joints,
        occlusion_exclude_links=(TOY_TOOL_FRAME,), reach_m=reach_m,
        camera=CameraConfig(frame=TOY_CAMERA_FRAME))


# ------------------------------------------------------------------ toy v1
class _WritableToy:
    """Shared by the toys: write the generated URDF and return its RobotConfig."""

    ARM_JOINTS: tuple = ()

    def write(self, directory: str | Path) -> RobotConfig:
        """Write ``<name>.urdf`` into ``directory`` and return its :class:`RobotConfig`.

        The config names the base ``base_footprint``, the tool ``tool_frame``, the
        camera ``toy_camera_optical_frame`` (on the base, 5 cm up, looking along
        +x). ``reach_m`` is the toy's ``R``.

        Raises:
            ConfigError: ``directory`` does not exist, or ``R`` is outside the
                range ``RobotConfig.reach_m`` accepts.
        """
        path = _write_urdf(self.urdf(), directory, f"{self.name}.urdf")
        return _toy_robot_config(self.name, path, self.ARM_JOINTS, self.reach_m)


@dataclass(frozen=True)
class StickToy(_WritableToy):
    """Seed 000 toy v1: a disk base ``(x, y, theta)`` with a rigid stick of length ``L``.

    Args:
        length_m: stick length ``L`` (m), from the base centre to the tip.

    Raises:
        ConfigError: ``length_m`` is not a finite positive number.

    Example:
        >>> toy = StickToy(1.0)
        >>> q = toy.solutions(np.array([2.0, 3.0]), np.linspace(0, 6, 7))
        >>> np.allclose(toy.fk(q), [2.0, 3.0])
        True
    """

    length_m: float = 1.0
    name: str = field(default="toy_stick", compare=False)
    dq: int = field(default=3, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _positive("StickToy.length_m", self.length_m)

    @property
    def reach_m(self) -> float:
        """The feature scale ``R = L`` (m)."""
        return float(self.length_m)

    # kinematics
    def fk(self, q: np.ndarray) -> np.ndarray:
        """Hand positions ``(N, 2)`` of configurations ``q`` ``(N, 3)`` (seed 000 section 6.2)."""
        q = _as_batch(q, 3, "StickToy configurations")
        L = self.length_m
        return q[:, :2] + L * np.stack([np.cos(q[:, 2]), np.sin(q[:, 2])], axis=1)

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """World poses ``(N, 4, 4)`` of the tool frame (stick tip, +x along the stick)."""
        q = _as_batch(q, 3, "StickToy configurations")
        p = self.fk(q)
        return _planar_pose(p[:, 0], p[:, 1], q[:, 2])

    def within_limits(self, q: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """``(N,)`` all True: the stick toy has no joint limits."""
        return np.ones(len(_as_batch(q, 3, "StickToy configurations")), dtype=bool)

    # closed-form solution set
    def solutions(self, h: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Points of the solution circle of targets ``h`` at angles ``t``.

        Args:
            h: ``(2,)`` one target or ``(N, 2)`` targets.
            t: ``(N,)`` angles (rad), one per target (a single target is broadcast).

        Returns:
            ``(N, 3)`` configurations ``(h_x - L cos t, h_y - L sin t, t)``.
        """
        h = _as_batch(h, 2, "targets")
        t = np.asarray(t, dtype=float).reshape(-1)
        if len(h) == 1:
            h = np.repeat(h, len(t), axis=0)
        if len(h) != len(t):
            raise InvalidRequest(f"{len(h)} targets but {len(t)} angles")
        L = self.length_m
        return np.stack([h[:, 0] - L * np.cos(t), h[:, 1] - L * np.sin(t), t], axis=1)

    def sample_solutions(self, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one exact solution per target from the uniform ground truth (section 6.4).

        Args:
            h: ``(N, 2)`` targets.
            rng: random generator.

        Returns:
            ``(N, 3)`` configurations with ``t ~ Uniform[-pi, pi)``.
        """
        h = _as_batch(h, 2, "targets")
        return self.solutions(h, rng.uniform(-math.pi, math.pi, size=len(h)))

    # features
    def featurize(self, q: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Features ``((x - h_x)/L, (y - h_y)/L, cos theta, sin theta)``, ``(N, 4)``."""
        q = _as_batch(q, 3, "StickToy configurations")
        h = _as_batch(h, 2, "targets")
        R = self.reach_m
        return np.stack([(q[:, 0] - h[:, 0]) / R, (q[:, 1] - h[:, 1]) / R,
                         np.cos(q[:, 2]), np.sin(q[:, 2])], axis=1)

    def decode(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`featurize`: configurations ``(N, 3)``, angle in (-pi, pi]."""
        x = _as_batch(x, 4, "StickToy features")
        h = _as_batch(h, 2, "targets")
        R = self.reach_m
        return np.stack([h[:, 0] + R * x[:, 0], h[:, 1] + R * x[:, 1],
                         np.arctan2(x[:, 3], x[:, 2])], axis=1)

    # description
    def urdf(self) -> str:
        """URDF text: base, fixed stick to the tool frame at ``(L, 0, 0)``, a base camera."""
        L = repr(float(self.length_m))
        lines = _urdf_header(self.name, 0.2 * self.length_m) + [
            '  <link name="stick_link"/>',
            '  <joint name="stick_joint" type="fixed">',
            f'    <parent link="{TOY_BASE_FRAME}"/><child link="stick_link"/>',
            '    <origin xyz="0 0 0" rpy="0 0 0"/>',
            '  </joint>',
        ] + _urdf_tool_tail("stick_link", L)
        return "\n".join(lines) + "\n"



# ------------------------------------------------------------------ toy v2
@dataclass(frozen=True)
class TwoLinkToy(_WritableToy):
    """Seed 000 toy v2: a disk base ``(x, y, psi)`` with a rotary two-link arm.

    The shoulder sits at the base centre; both joints turn about the vertical.
    Defaults are this project's choice (seed 000 gives no numbers).

    Args:
        l1_m: upper link length ``L1`` (m).
        l2_m: fore link length ``L2`` (m).
        theta1_limits: ``(lo, hi)`` shoulder limits (rad), within ``[-pi, pi]``.
        theta2_limits: ``(lo, hi)`` elbow limits (rad), within ``[-pi, pi]``.
        base_pos_eps_m: ``epsilon`` of the donut ``r in [R_min + eps, R_max - eps]``.
        base_heading_stddev_rad: ``sigma`` of the heading noise around facing the target.

    Raises:
        ConfigError: a length is not positive, a limit pair is empty or outside
            ``[-pi, pi]``, or the donut is empty.
    """

    ARM_JOINTS = TOY_ARM_JOINTS

    l1_m: float = 0.5
    l2_m: float = 0.4
    theta1_limits: tuple = (-2.0, 2.0)
    theta2_limits: tuple = (-2.6, 2.6)
    base_pos_eps_m: float = 0.05
    base_heading_stddev_rad: float = 0.3
    name: str = field(default="toy_two_link", compare=False)
    dq: int = field(default=5, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _positive("TwoLinkToy.l1_m", self.l1_m)
        _positive("TwoLinkToy.l2_m", self.l2_m)
        for nm in ("theta1_limits", "theta2_limits"):
            lim = tuple(float(v) for v in getattr(self, nm))
            if len(lim) != 2 or not (-math.pi <= lim[0] < lim[1] <= math.pi):
                raise ConfigError(
                    f"TwoLinkToy.{nm} = {getattr(self, nm)!r} must be (lo, hi) with "
                    "-pi <= lo < hi <= pi")
            object.__setattr__(self, nm, lim)
        if not (math.isfinite(self.base_pos_eps_m) and self.base_pos_eps_m >= 0.0):
            raise ConfigError(f"TwoLinkToy.base_pos_eps_m must be >= 0, got "
                              f"{self.base_pos_eps_m!r}")
        if self.r_min_m + self.base_pos_eps_m >= self.r_max_m - self.base_pos_eps_m:
            raise ConfigError(
                f"TwoLinkToy.base_pos_eps_m = {self.base_pos_eps_m!r} leaves no donut between "
                f"R_min = {self.r_min_m} and R_max = {self.r_max_m}; make it smaller")
        if not (math.isfinite(self.base_heading_stddev_rad)
                and self.base_heading_stddev_rad >= 0.0):
            raise ConfigError(f"TwoLinkToy.base_heading_stddev_rad must be >= 0, got "
                              f"{self.base_heading_stddev_rad!r}")

    @property
    def r_min_m(self) -> float:
        """``R_min = |L1 - L2|`` (folded)."""
        return abs(self.l1_m - self.l2_m)

    @property
    def r_max_m(self) -> float:
        """``R_max = L1 + L2`` (stretched)."""
        return self.l1_m + self.l2_m

    @property
    def reach_m(self) -> float:
        """The feature scale ``R = L1 + L2`` (m, seed 000 section 4.1)."""
        return self.r_max_m

    @property
    def lower(self) -> np.ndarray:
        """Lower limits of ``q`` ``(5,)`` (base unbounded)."""
        return np.array([-np.inf, -np.inf, -np.inf, self.theta1_limits[0],
                         self.theta2_limits[0]])

    @property
    def upper(self) -> np.ndarray:
        """Upper limits of ``q`` ``(5,)`` (base unbounded)."""
        return np.array([np.inf, np.inf, np.inf, self.theta1_limits[1], self.theta2_limits[1]])

    def within_limits(self, q: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """``(N,)`` booleans: both arm joints within their limits (+ ``tol``)."""
        q = _as_batch(q, 5, "TwoLinkToy configurations")
        return np.all((q >= self.lower - tol) & (q <= self.upper + tol), axis=1)

    # kinematics
    def arm_local(self, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
        """Hand in the base frame ``(N, 2)``: ``(L1 c1 + L2 c12, L1 s1 + L2 s12)``."""
        t1, t2 = np.asarray(t1, dtype=float), np.asarray(t2, dtype=float)
        return np.stack([self.l1_m * np.cos(t1) + self.l2_m * np.cos(t1 + t2),
                         self.l1_m * np.sin(t1) + self.l2_m * np.sin(t1 + t2)], axis=-1)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Hand positions ``(N, 2)`` of configurations ``q = (x, y, psi, t1, t2)`` ``(N, 5)``."""
        q = _as_batch(q, 5, "TwoLinkToy configurations")
        loc = self.arm_local(q[:, 3], q[:, 4])
        c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
        return np.stack([q[:, 0] + c * loc[:, 0] - s * loc[:, 1],
                         q[:, 1] + s * loc[:, 0] + c * loc[:, 1]], axis=1)

    def manipulability(self, q: np.ndarray) -> np.ndarray:
        """Planar manipulability of the arm, ``|det J| = L1 L2 |sin theta2|`` (m^2), ``(N,)``.

        Zero stretched out or folded. (:meth:`WholeBodyModel.manipulability` is
        the 3-D measure, identically zero for this planar arm.) A score for the
        filtering of seed 000 section 5.1, step 6.
        """
        q = _as_batch(q, 5, "TwoLinkToy configurations")
        return self.l1_m * self.l2_m * np.abs(np.sin(q[:, 4]))

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """World poses ``(N, 4, 4)`` of the tool frame (+x along the fore link)."""
        q = _as_batch(q, 5, "TwoLinkToy configurations")
        p = self.fk(q)
        return _planar_pose(p[:, 0], p[:, 1], q[:, 2] + q[:, 3] + q[:, 4])

    # closed-form solutions
    def ik(self, base: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Analytic arm IK for fixed bases, both elbow branches (seed 000 section 5.1, step 4).

        Args:
            base: ``(N, 3)`` base poses ``(x, y, psi)``.
            h: ``(N, 2)`` targets.

        Returns:
            ``q`` ``(N, 2, 5)``: branch 0 has ``theta2 = +arccos(m)``, branch 1
            ``-arccos(m)``; ``valid`` ``(N, 2)``: the target is within reach
            (``|m| <= 1``) and both joints within their limits. Unreachable
            rows hold the clipped (nearest) arm posture.
        """
        base = _as_batch(base, 3, "base poses")
        h = _as_batch(h, 2, "targets")
        if len(base) != len(h):
            raise InvalidRequest(f"{len(base)} bases but {len(h)} targets")
        c, s = np.cos(base[:, 2]), np.sin(base[:, 2])
        dx, dy = h[:, 0] - base[:, 0], h[:, 1] - base[:, 1]
        u, v = c * dx + s * dy, -s * dx + c * dy          # R(psi)^T (H - B)
        L1, L2 = self.l1_m, self.l2_m
        m = (u * u + v * v - L1 * L1 - L2 * L2) / (2.0 * L1 * L2)
        reachable = np.abs(m) <= 1.0 + 1e-12
        t2p = np.arccos(np.clip(m, -1.0, 1.0))
        q = np.empty((len(h), 2, 5))
        q[:, :, :3] = base[:, None, :]
        for k, t2 in enumerate((t2p, -t2p)):
            t1 = np.arctan2(v, u) - np.arctan2(L2 * np.sin(t2), L1 + L2 * np.cos(t2))
            q[:, k, 3] = (t1 + np.pi) % TWO_PI - np.pi
            q[:, k, 4] = t2
        valid = reachable[:, None] & self.within_limits(q.reshape(-1, 5)).reshape(-1, 2)
        return q, valid

    def sample_bases(self, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one base per target from the donut, heading towards it (section 5.1, 2-3).

        ``r ~ U(R_min + eps, R_max - eps)``, ``phi ~ U[0, 2 pi)``, ``(x, y) = H +
        r (cos phi, sin phi)``, ``psi = atan2(h_y - y, h_x - x) + N(0, sigma^2)``.

        Args:
            h: ``(N, 2)`` targets.
            rng: random generator.

        Returns:
            ``(N, 3)`` base poses, ``psi`` wrapped to [-pi, pi).
        """
        h = _as_batch(h, 2, "targets")
        n = len(h)
        eps = self.base_pos_eps_m
        r = rng.uniform(self.r_min_m + eps, self.r_max_m - eps, size=n)
        phi = rng.uniform(0.0, TWO_PI, size=n)
        x, y = h[:, 0] + r * np.cos(phi), h[:, 1] + r * np.sin(phi)
        psi = np.arctan2(h[:, 1] - y, h[:, 0] - x) + self.base_heading_stddev_rad * \
            rng.standard_normal(n)
        return np.stack([x, y, (psi + np.pi) % TWO_PI - np.pi], axis=1)

    def sample_solutions(self, h: np.ndarray, rng: np.random.Generator,
                         max_rounds: int = 200) -> np.ndarray:
        """Draw one exact solution per target from the data distribution of section 5.1.

        Base as :meth:`sample_bases`, an elbow branch uniformly at random, and
        rejection of those that break a joint limit. This is the distribution
        of the data set (every valid (base, branch) pair equally likely) with
        independent draws; its implied angle is uniform (section 6.4).

        Args:
            h: ``(N, 2)`` targets.
            rng: random generator.
            max_rounds: rejection rounds before giving up.

        Returns:
            ``(N, 5)`` configurations.

        Raises:
            ConfigError: the limits reject (nearly) everything.
        """
        h = _as_batch(h, 2, "targets")
        out = np.empty((len(h), 5))
        todo = np.arange(len(h))
        for _ in range(max_rounds):
            if len(todo) == 0:
                return out
            q, valid = self.ik(self.sample_bases(h[todo], rng), h[todo])
            k = rng.integers(0, 2, size=len(todo))
            rows = np.arange(len(todo))
            ok = valid[rows, k]
            out[todo[ok]] = q[rows[ok], k[ok]]
            todo = todo[~ok]
        raise ConfigError(
            f"{len(todo)} targets found no solution within the joint limits in {max_rounds} "
            f"rounds; widen theta1_limits={self.theta1_limits} / theta2_limits="
            f"{self.theta2_limits}")

    # features (seed 000 section 4.2)
    def featurize(self, q: np.ndarray, h: np.ndarray) -> np.ndarray:
        """``Q_feat`` ``(N, 8)`` of section 4.2, relative to the targets ``h`` ``(N, 2)``."""
        q = _as_batch(q, 5, "TwoLinkToy configurations")
        h = _as_batch(h, 2, "targets")
        if len(q) != len(h):
            raise InvalidRequest(f"{len(q)} configurations but {len(h)} targets")
        R = self.reach_m
        return np.stack([(q[:, 0] - h[:, 0]) / R, (q[:, 1] - h[:, 1]) / R,
                         np.cos(q[:, 2]), np.sin(q[:, 2]), np.cos(q[:, 3]), np.sin(q[:, 3]),
                         np.cos(q[:, 4]), np.sin(q[:, 4])], axis=1)

    def decode(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`featurize`: ``(N, 5)``, angles by ``atan2`` in (-pi, pi].

        Features from a model need not have unit (cos, sin) pairs; ``atan2`` takes
        their direction.
        """
        x = _as_batch(x, 8, "TwoLinkToy features")
        h = _as_batch(h, 2, "targets")
        if len(x) != len(h):
            raise InvalidRequest(f"{len(x)} feature rows but {len(h)} targets")
        R = self.reach_m
        return np.stack([h[:, 0] + R * x[:, 0], h[:, 1] + R * x[:, 1],
                         np.arctan2(x[:, 3], x[:, 2]), np.arctan2(x[:, 5], x[:, 4]),
                         np.arctan2(x[:, 7], x[:, 6])], axis=1)

    # description
    def urdf(self) -> str:
        """URDF text: base, revolute-z shoulder and elbow, tool frame at the fore-link tip."""
        L1, L2 = repr(float(self.l1_m)), repr(float(self.l2_m))
        lines = _urdf_header(self.name, 0.2 * self.r_max_m)
        for joint, parent, child, xyz, lim in (
                ("shoulder", TOY_BASE_FRAME, "upper_link", "0 0 0", self.theta1_limits),
                ("elbow", "upper_link", "fore_link", f"{L1} 0 0", self.theta2_limits)):
            lines += [
                f'  <link name="{child}"/>',
                f'  <joint name="{joint}" type="revolute">',
                f'    <parent link="{parent}"/><child link="{child}"/>',
                f'    <origin xyz="{xyz}" rpy="0 0 0"/>',
                '    <axis xyz="0 0 1"/>',
                f'    <limit lower="{lim[0]!r}" upper="{lim[1]!r}" effort="10" velocity="3"/>',
                '  </joint>',
            ]
        lines += _urdf_tool_tail("fore_link", L2)
        return "\n".join(lines) + "\n"



Toy = StickToy | TwoLinkToy
Sampler = Callable[[np.ndarray], np.ndarray]

DEFAULT_WORKSPACE_M = ((-2.0, 2.0), (-2.0, 2.0))


def _check_workspace(workspace_m) -> np.ndarray:
    w = np.asarray(workspace_m, dtype=float)
    if w.shape != (2, 2) or not np.all(np.isfinite(w)) or np.any(w[:, 1] <= w[:, 0]):
        raise ConfigError(
            f"workspace_m must be ((x_min, x_max), (y_min, y_max)) with min < max, "
            f"got {workspace_m!r}")
    return w


def sample_targets(n: int, rng: np.random.Generator,
                   workspace_m=DEFAULT_WORKSPACE_M) -> np.ndarray:
    """Draw targets ``H ~ Uniform(workspace)`` (seed 000 section 5.1, step 1): ``(n, 2)``.

    Args:
        n: number of targets.
        rng: random generator.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` (m).

    Raises:
        ConfigError: an empty or malformed workspace.
    """
    w = _check_workspace(workspace_m)
    return rng.uniform(w[:, 0], w[:, 1], size=(int(n), 2))


# --------------------------------------------------------- data generation
def toy_v1_samples(n: int, rng: np.random.Generator, toy: StickToy | None = None,
                   workspace_m=DEFAULT_WORKSPACE_M) -> tuple[np.ndarray, np.ndarray]:
    """Data set of toy v1: ``H ~ U(workspace)``, ``t ~ U[-pi, pi)``, ``Q`` on the circle.

    Args:
        n: number of pairs.
        rng: random generator (the result is a function of its state).
        toy: the stick toy, default ``StickToy()``.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` of the targets (m).

    Returns:
        ``q_world`` ``(n, 3)`` and ``h_world`` ``(n, 2)``, ``fk(q) == h``.
    """
    toy = toy or StickToy()
    h = sample_targets(n, rng, workspace_m)
    return toy.sample_solutions(h, rng), h


def toy_v2_samples(n: int, rng: np.random.Generator, toy: TwoLinkToy | None = None,
                   workspace_m=DEFAULT_WORKSPACE_M) -> tuple[np.ndarray, np.ndarray]:
    """Data set of toy v2 by the pipeline of seed 000 section 5.1.

    Per target: (1) ``H ~ U(workspace)``; (2)-(3) one base from the donut facing
    ``H`` with heading noise; (4) both elbow branches by analytic IK; (5) keep
    the branches within the joint limits. Rows are then shuffled (the two
    branches of one base would otherwise sit side by side) and the first ``n``
    kept.

    Args:
        n: number of pairs.
        rng: random generator (the result is a function of its state).
        toy: the two-link toy, default ``TwoLinkToy()``.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` of the targets (m).

    Returns:
        ``q_world`` ``(n, 5)`` and ``h_world`` ``(n, 2)``, ``fk(q) == h``.

    Raises:
        ConfigError: the joint limits reject everything.
    """
    toy = toy or TwoLinkToy()
    n = int(n)
    qs, hs, have = [], [], 0
    for _ in range(1000):
        m = max(64, (n - have) // 2 + 16)
        h = sample_targets(m, rng, workspace_m)
        q, valid = toy.ik(toy.sample_bases(h, rng), h)
        qs.append(q[valid])
        hs.append(np.repeat(h[:, None], 2, axis=1)[valid])
        have += int(valid.sum())
        if have >= n:
            break
    else:
        raise ConfigError(f"TwoLinkToy limits {toy.theta1_limits}, {toy.theta2_limits} reject "
                          "(nearly) every solution; widen them")
    q, h = np.concatenate(qs)[:n], np.concatenate(hs)[:n]
    perm = rng.permutation(n)
    return q[perm], h[perm]


def toy_v2_dataset(n: int, rng: np.random.Generator, toy: TwoLinkToy | None = None,
                   workspace_m=DEFAULT_WORKSPACE_M,
                   cond_dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs ``(C_feat, Q_feat)`` of toy v2.1 (seed 000 section 4.1).

    ``Q_feat`` is :meth:`TwoLinkToy.featurize` of :func:`toy_v2_samples` relative
    to each row's own target, so the data no longer depend on ``H``: the
    condition is the zero vector ``C_feat = (0, ..., 0)`` (seed 000 Table 1:
    ``c_feat = [0, 0]``; ``cond_dim = 0`` gives the empty ``(n, 0)`` of
    "dCond = 0"). A sampler of ``p(Q_feat | C_feat)`` is decoded for a target
    ``H`` with :meth:`TwoLinkToy.decode`.

    Args:
        n: number of pairs.
        rng: random generator (the result is a function of its state).
        toy: the two-link toy, default ``TwoLinkToy()``.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` of the targets (m);
            it does not change the distribution of the features.
        cond_dim: width of the (zero) condition.

    Returns:
        ``cond`` ``(n, cond_dim)`` zeros and ``x`` ``(n, 8)`` features.
    """
    if isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 0:
        raise ConfigError(f"cond_dim must be an integer >= 0, got {cond_dim!r}")
    toy = toy or TwoLinkToy()
    q, h = toy_v2_samples(n, rng, toy, workspace_m)
    return np.zeros((len(q), cond_dim)), toy.featurize(q, h)


# ----------------------------------------------------------------- samplers
def exact_sampler(toy: Toy, rng: np.random.Generator) -> Sampler:
    """The ground-truth sampler: ``h (B, 2) -> q (B, dq)``, one exact draw per row."""
    return lambda h: toy.sample_solutions(h, rng)


def feature_sampler(toy: Toy, sample_features: Callable[[int], np.ndarray]) -> Sampler:
    """Turn an unconditional sampler of ``Q_feat`` into ``h (B, 2) -> q (B, dq)``.

    Args:
        toy: the toy whose :meth:`decode` maps features back for each target.
        sample_features: ``n -> (n, d_feat)`` draws (e.g. a trained v2.1 model).
    """
    return lambda h: toy.decode(sample_features(len(h)), h)


class NearestNeighbourLookup:
    """Nearest-neighbour baseline of seed 000 section 6.3 (numpy, brute force).

    For a query ``H'`` find the ``k`` nearest training targets ``H_i``; with
    ``k = 1`` return the ``Q_i`` of the nearest (deterministic, the seed's
    "NNDeterministicLookup"); with ``k > 1`` draw one of them with weights
    ``w_j ~ exp(-|H_j - H'|^2 / sigma^2)``.

    Args:
        h_train: ``(N, 2)`` training targets.
        q_train: ``(N, dq)`` their configurations.
        k: neighbours considered.
        sigma_m: kernel width (m) for ``k > 1``.
        rng: random generator for ``k > 1``.
        chunk: queries per distance block (memory ``chunk * N`` floats).

    Raises:
        ConfigError: bad ``k`` / ``sigma_m``, or ``k > 1`` without ``rng``.
    """

    def __init__(self, h_train: np.ndarray, q_train: np.ndarray, k: int = 1,
                 sigma_m: float = 0.05, rng: np.random.Generator | None = None,
                 chunk: int = 256) -> None:
        self.h_train = _as_batch(h_train, 2, "training targets")
        self.q_train = np.asarray(q_train, dtype=float)
        if self.q_train.ndim != 2 or len(self.q_train) != len(self.h_train):
            raise InvalidRequest(f"q_train must be (N, dq) with N = {len(self.h_train)}, "
                                 f"got {self.q_train.shape}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.h_train):
            raise ConfigError(f"k must be an integer in [1, {len(self.h_train)}], got {k!r}")
        if k > 1 and rng is None:
            raise ConfigError("k > 1 draws among the neighbours: pass rng")
        self.k, self.sigma_m, self.rng, self.chunk = k, _positive("sigma_m", sigma_m), rng, chunk

    def neighbours(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(B, k)`` of the nearest training targets and distances ``(B, k)``."""
        h = _as_batch(h, 2, "query targets")
        idx = np.empty((len(h), self.k), dtype=int)
        dist = np.empty((len(h), self.k))
        for a in range(0, len(h), self.chunk):
            d2 = np.sum((h[a:a + self.chunk, None, :] - self.h_train[None]) ** 2, axis=-1)
            if self.k == 1:
                j = np.argmin(d2, axis=1)[:, None]
            else:
                j = np.argpartition(d2, self.k - 1, axis=1)[:, :self.k]
            idx[a:a + self.chunk] = j
            dist[a:a + self.chunk] = np.sqrt(np.take_along_axis(d2, j, axis=1))
        return idx, dist

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """Configurations ``(B, dq)`` for query targets ``h`` ``(B, 2)``."""
        h = _as_batch(h, 2, "query targets")
        uniq, inv = np.unique(h, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        idx, dist = self.neighbours(uniq)
        if self.k == 1:
            return self.q_train[idx[inv, 0]]
        w = np.exp(-(dist[inv] / self.sigma_m) ** 2 + (dist[inv, :1] / self.sigma_m) ** 2)
        cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        pick = np.minimum((cdf < self.rng.random((len(h), 1))).sum(axis=1), self.k - 1)
        return self.q_train[idx[inv, pick]]


# ----------------------------------------------------------------- metrics
def implied_angles(q: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Angle of the target seen from the base, ``atan2(h_y - y, h_x - x)`` (section 6.4).

    Args:
        q: ``(..., dq)`` configurations (base ``x, y`` first).
        h: ``(..., 2)`` targets, broadcastable against ``q[..., :2]``.

    Returns:
        ``(...)`` angles in (-pi, pi]; uniform under the ground truth of both toys.
    """
    q, h = np.asarray(q, dtype=float), np.asarray(h, dtype=float)
    return np.arctan2(h[..., 1] - q[..., 1], h[..., 0] - q[..., 0])


def max_circular_gap(angles: np.ndarray) -> np.ndarray:
    """Largest gap between consecutive angles around the circle.

    Args:
        angles: ``(M, S)`` angles (rad), ``S`` samples for each of ``M`` targets.

    Returns:
        ``(M,)`` gaps in ``(0, 2 pi]``; ``2 pi`` when all ``S`` angles coincide.
    """
    a = np.sort(np.mod(np.asarray(angles, dtype=float), TWO_PI), axis=-1)
    gaps = np.diff(a, axis=-1)
    wrap = a[..., :1] + TWO_PI - a[..., -1:]
    return np.concatenate([gaps, wrap], axis=-1).max(axis=-1)


def kl_to_uniform(angles: np.ndarray, n_bins: int = 36) -> float:
    """``KL(p_hat || Uniform)`` of the histogram of angles on ``n_bins`` equal bins (nats).

    0 for a flat histogram, ``log(n_bins)`` when every angle falls in one bin.
    With ``n`` uniform draws its expectation is about ``(n_bins - 1) / (2 n)``.
    """
    a = np.mod(np.asarray(angles, dtype=float).reshape(-1), TWO_PI)
    counts = np.bincount(np.minimum((a / TWO_PI * n_bins).astype(int), n_bins - 1),
                         minlength=n_bins)
    p = counts[counts > 0] / a.size
    return float(np.sum(p * np.log(p * n_bins)))


def toy_metrics(samples_fn: Sampler, toy: Toy, h_test: np.ndarray, n_samples: int = 100,
                n_bins: int = 36) -> dict[str, float]:
    """Evaluate a sampler on a toy with the metrics of seed 000 section 6.4.

    Each test target is repeated ``n_samples`` times and passed to
    ``samples_fn`` in one batch (``(M * S, 2) -> (M * S, dq)``, one draw per row,
    rows of one target contiguous).

    * ``hand_err/{mean,median,p95,max}``: ``|f(Q) - H|`` over all draws (m).
    * ``coverage/max_gap_{mean,p95}``: per target, the largest gap of the
      implied angles around the circle (rad); ``2 pi`` = fully collapsed.
    * ``coverage/kl_to_uniform``: KL of the histogram of all implied angles,
      pooled over targets and draws, to the uniform (nats); the pooling that
      reproduces the seed's nearest-neighbour row.
    * ``coverage/kl_to_uniform_per_h``: the same per target, averaged.
    * ``stochasticity/var_Q_fixed_H``: per target, the variance over draws of
      each feature of :meth:`featurize` (positions in units of ``R``, angles as
      cos/sin), averaged over features and targets; 0 = ignores its noise.
    * ``valid/within_limits``: fraction of draws within the joint limits (v2).

    Args:
        samples_fn: the sampler under test.
        toy: :class:`StickToy` or :class:`TwoLinkToy`.
        h_test: ``(M, 2)`` test targets.
        n_samples: draws per target ``S`` (>= 2).
        n_bins: histogram bins of the KL.

    Returns:
        Metric name -> value (the keys of :data:`SEED_METRIC_KEYS` and the extras).

    Raises:
        InvalidRequest: the sampler returns the wrong shape or non-finite values.
    """
    h_test = _as_batch(h_test, 2, "test targets")
    if n_samples < 2:
        raise ConfigError(f"n_samples must be >= 2, got {n_samples!r}")
    m, s = len(h_test), int(n_samples)
    h_rep = np.repeat(h_test, s, axis=0)
    q = np.asarray(samples_fn(h_rep), dtype=float)
    if q.shape != (m * s, toy.dq):
        raise InvalidRequest(f"samples_fn returned {q.shape}, expected {(m * s, toy.dq)}")
    if not np.all(np.isfinite(q)):
        raise InvalidRequest(f"samples_fn returned {int((~np.isfinite(q)).sum())} non-finite "
                             "values")
    err = np.linalg.norm(toy.fk(q) - h_rep, axis=1)
    ang = implied_angles(q, h_rep).reshape(m, s)
    gaps = max_circular_gap(ang)
    feats = toy.featurize(q, h_rep).reshape(m, s, -1)
    within = toy.within_limits(q)
    return {
        "hand_err/mean": float(err.mean()),
        "hand_err/median": float(np.median(err)),
        "hand_err/p95": float(np.percentile(err, 95)),
        "coverage/max_gap_mean": float(gaps.mean()),
        "coverage/max_gap_p95": float(np.percentile(gaps, 95)),
        "coverage/kl_to_uniform": kl_to_uniform(ang, n_bins),
        "stochasticity/var_Q_fixed_H": float(feats.var(axis=1).mean()),
        "hand_err/max": float(err.max()),
        "coverage/kl_to_uniform_per_h": float(np.mean([kl_to_uniform(a, n_bins)
                                                       for a in ang])),
        "valid/within_limits": float(within.mean()),
    }


def format_metrics(metrics: Mapping[str, float], title: str) -> str:
    """Render metrics like seed 000's table: ``=== Results: <title> ===`` then one per line."""
    keys = [k for k in SEED_METRIC_KEYS if k in metrics] + sorted(
        k for k in metrics if k not in SEED_METRIC_KEYS)
    return "\n".join([f"=== Results: {title} ==="] + [f" {k} {metrics[k]:.6f}" for k in keys])


def nn_baseline_row(rng: np.random.Generator, toy: StickToy | None = None,
                    n_train: int = 20000, n_test: int = 1000, n_samples: int = 100,
                    workspace_m=DEFAULT_WORKSPACE_M, n_bins: int = 36) -> dict[str, float]:
    """Reproduce the "NNDeterministicLookup" row of seed 000 section 5.3.1 on toy v1.

    Seed 000 does not give its set-up; these defaults (stick ``L = 1``, targets
    uniform on ``[-2, 2]^2``, 20,000 training pairs, 1,000 in-distribution test
    targets, 100 draws each, 36 bins) are chosen to match its scale: the
    nearest-neighbour distance of ``N`` uniform points on area ``A`` has mean
    ``~0.5 sqrt(A / N)`` = 0.0141 m here (seed: 0.0144).

    Returns:
        :func:`toy_metrics` of the 1-NN lookup.
    """
    toy = toy or StickToy()
    q_train, h_train = toy_v1_samples(n_train, rng, toy, workspace_m)
    h_test = sample_targets(n_test, rng, workspace_m)
    return toy_metrics(NearestNeighbourLookup(h_train, q_train), toy, h_test, n_samples, n_bins)
