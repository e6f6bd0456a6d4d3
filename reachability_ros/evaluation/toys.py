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

Both have a URDF generated in code (:meth:`StickToy.urdf`, :meth:`TwoLinkToy.urdf`,
:mod:`.toy_urdf`)
that :class:`~reachability_ros.core.robot.WholeBodyModel` loads with its planar
root, so the toys run through the same FK code as the LeKiwi; their whole-body
configuration ``q`` *is* the toy configuration ``Q`` (``(x, y, theta)``, resp.
``(x, y, psi, theta1, theta2)``). Everything lies in the floor plane ``z = 0``.

The data pipeline is seed 000 section 5.1 and the features those of section 4.1-4.2
(v2.1): ``Q_feat = ((x - h_x)/R, (y - h_y)/R, cos psi, sin psi, cos t1, sin t1,
cos t2, sin t2)`` with ``R = L1 + L2``; the condition ``C_feat`` is the zero
vector (section 4.1, "dCond"), because the features already hold ``H``. Data sets,
samplers and the nearest-neighbour baseline: :mod:`.toy_data`; the metrics of the
seed's table: :mod:`.toy_metrics`.

Notes on the seed:

* Section 5.1 step 4(c) writes ``theta1 = atan2(u, v) - ...``; with
  ``atan2(y, x)`` conventions (numpy's) the shoulder angle of the local target
  ``(u, v)`` is ``atan2(v, u)``, which is what is used here (the tests check
  the hand hits the target to 1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.config import RobotConfig
from ..core.errors import ConfigError, InvalidRequest
from ..core.geometry import TWO_PI, planar_transform, wrap_angle
from .toy_urdf import (TOY_ARM_JOINTS, TOY_BASE_FRAME, toy_robot_config, urdf_header,
                       urdf_tool_tail, write_urdf)

TOY_FEATURIZATION_VERSION = "toy-v2.1"


# ----------------------------------------------------------------- validation
def positive_number(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise a ConfigError naming it unless finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0.0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def as_batch(a: np.ndarray, width: int, what: str) -> np.ndarray:
    """Return ``a`` as a finite float array ``(N, width)`` (a 1-D row is promoted).

    Raises:
        InvalidRequest: another shape, or NaN / inf values (``what`` names the array).
    """
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != width:
        raise InvalidRequest(f"{what} must have shape (N, {width}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidRequest(f"{what} must be finite, got {a[~np.isfinite(a)][:3]}")
    return a


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
        path = write_urdf(self.urdf(), directory, f"{self.name}.urdf")
        return toy_robot_config(self.name, path, self.ARM_JOINTS, self.reach_m)


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
        positive_number("StickToy.length_m", self.length_m)

    @property
    def reach_m(self) -> float:
        """The feature scale ``R = L`` (m)."""
        return float(self.length_m)

    # kinematics
    def fk(self, q: np.ndarray) -> np.ndarray:
        """Hand positions ``(N, 2)`` of configurations ``q`` ``(N, 3)`` (seed 000 section 6.2)."""
        q = as_batch(q, 3, "StickToy configurations")
        L = self.length_m
        return q[:, :2] + L * np.stack([np.cos(q[:, 2]), np.sin(q[:, 2])], axis=1)

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """World poses ``(N, 4, 4)`` of the tool frame (stick tip, +x along the stick)."""
        q = as_batch(q, 3, "StickToy configurations")
        p = self.fk(q)
        return planar_transform(p[:, 0], p[:, 1], q[:, 2])

    def within_limits(self, q: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """``(N,)`` all True: the stick toy has no joint limits."""
        return np.ones(len(as_batch(q, 3, "StickToy configurations")), dtype=bool)

    # closed-form solution set
    def solutions(self, h: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Points of the solution circle of targets ``h`` at angles ``t``.

        Args:
            h: ``(2,)`` one target or ``(N, 2)`` targets.
            t: ``(N,)`` angles (rad), one per target (a single target is broadcast).

        Returns:
            ``(N, 3)`` configurations ``(h_x - L cos t, h_y - L sin t, t)``.
        """
        h = as_batch(h, 2, "targets")
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
        h = as_batch(h, 2, "targets")
        return self.solutions(h, rng.uniform(-math.pi, math.pi, size=len(h)))

    # features
    def featurize(self, q: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Features ``((x - h_x)/L, (y - h_y)/L, cos theta, sin theta)``, ``(N, 4)``."""
        q = as_batch(q, 3, "StickToy configurations")
        h = as_batch(h, 2, "targets")
        R = self.reach_m
        return np.stack([(q[:, 0] - h[:, 0]) / R, (q[:, 1] - h[:, 1]) / R,
                         np.cos(q[:, 2]), np.sin(q[:, 2])], axis=1)

    def decode(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`featurize`: configurations ``(N, 3)``, angle in (-pi, pi]."""
        x = as_batch(x, 4, "StickToy features")
        h = as_batch(h, 2, "targets")
        R = self.reach_m
        return np.stack([h[:, 0] + R * x[:, 0], h[:, 1] + R * x[:, 1],
                         np.arctan2(x[:, 3], x[:, 2])], axis=1)

    # description
    def urdf(self) -> str:
        """URDF text: base, fixed stick to the tool frame at ``(L, 0, 0)``, a base camera."""
        L = repr(float(self.length_m))
        lines = urdf_header(self.name, 0.2 * self.length_m) + [
            '  <link name="stick_link"/>',
            '  <joint name="stick_joint" type="fixed">',
            f'    <parent link="{TOY_BASE_FRAME}"/><child link="stick_link"/>',
            '    <origin xyz="0 0 0" rpy="0 0 0"/>',
            '  </joint>',
        ] + urdf_tool_tail("stick_link", L)
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
        positive_number("TwoLinkToy.l1_m", self.l1_m)
        positive_number("TwoLinkToy.l2_m", self.l2_m)
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
        q = as_batch(q, 5, "TwoLinkToy configurations")
        return np.all((q >= self.lower - tol) & (q <= self.upper + tol), axis=1)

    # kinematics
    def arm_local(self, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
        """Hand in the base frame ``(N, 2)``: ``(L1 c1 + L2 c12, L1 s1 + L2 s12)``."""
        t1, t2 = np.asarray(t1, dtype=float), np.asarray(t2, dtype=float)
        return np.stack([self.l1_m * np.cos(t1) + self.l2_m * np.cos(t1 + t2),
                         self.l1_m * np.sin(t1) + self.l2_m * np.sin(t1 + t2)], axis=-1)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Hand positions ``(N, 2)`` of configurations ``q = (x, y, psi, t1, t2)`` ``(N, 5)``."""
        q = as_batch(q, 5, "TwoLinkToy configurations")
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
        q = as_batch(q, 5, "TwoLinkToy configurations")
        return self.l1_m * self.l2_m * np.abs(np.sin(q[:, 4]))

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """World poses ``(N, 4, 4)`` of the tool frame (+x along the fore link)."""
        q = as_batch(q, 5, "TwoLinkToy configurations")
        p = self.fk(q)
        return planar_transform(p[:, 0], p[:, 1], q[:, 2] + q[:, 3] + q[:, 4])

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
        base = as_batch(base, 3, "base poses")
        h = as_batch(h, 2, "targets")
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
            q[:, k, 3] = wrap_angle(t1)
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
        h = as_batch(h, 2, "targets")
        n = len(h)
        eps = self.base_pos_eps_m
        r = rng.uniform(self.r_min_m + eps, self.r_max_m - eps, size=n)
        phi = rng.uniform(0.0, TWO_PI, size=n)
        x, y = h[:, 0] + r * np.cos(phi), h[:, 1] + r * np.sin(phi)
        psi = np.arctan2(h[:, 1] - y, h[:, 0] - x) + self.base_heading_stddev_rad * \
            rng.standard_normal(n)
        return np.stack([x, y, wrap_angle(psi)], axis=1)

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
        h = as_batch(h, 2, "targets")
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
        q = as_batch(q, 5, "TwoLinkToy configurations")
        h = as_batch(h, 2, "targets")
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
        x = as_batch(x, 8, "TwoLinkToy features")
        h = as_batch(h, 2, "targets")
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
        lines = urdf_header(self.name, 0.2 * self.r_max_m)
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
        lines += urdf_tool_tail("fore_link", L2)
        return "\n".join(lines) + "\n"


#: either toy
Toy = StickToy | TwoLinkToy
