"""The whole-body robot model: URDF -> Pinocchio with a planar base, batched FK.

The configuration of the whole body is ``q = (base_x, base_y, base_yaw,
arm joints...)`` (for the LeKiwi: 3 + 5 = 8 numbers, metres and radians).
Pinocchio is the source of truth. The root is a planar joint built as a
composite of prismatic-x, prismatic-y and revolute-z, so that Pinocchio's
configuration vector *is* ``q`` and its Jacobian columns are d/dx, d/dy,
d/dyaw. Every joint that is not an arm joint (wheels, gripper) is locked at
zero with ``buildReducedModel``.

A vectorized numpy path (:meth:`WholeBodyModel.fk`, :meth:`WholeBodyModel.jacobian`)
replays Pinocchio's own joint placements for N configurations at once; tests
hold it to Pinocchio within 1e-9.

Speed notes (the vectorized path is the hot loop of the proposal service):
the chain is evaluated in a structure-of-arrays layout, one ``(3, 4, N)`` array
``[R | p]`` per joint with the configurations on the last (contiguous) axis.
The constant joint placement is applied with one small matrix product per
joint, ``matmul((4, 3), (3, 3, N))``, and the joint's own rotation is a mix
of two columns only (a revolute joint about z, x or y changes a 2 x 2 block).
The root pose (planar base motion) starts the chain; with the base at zero
the same chain gives poses in the base frame (what the visibility check uses).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pinocchio as pin

from .config import BASE_JOINTS, RobotConfig
from .errors import DescriptionError, InvalidRequest, UnknownFrame
from .geometry import make_transform


@dataclass(frozen=True)
class Primitive:
    """A collision primitive attached to a joint frame of the reduced model.

    Attributes:
        name: geometry object name (``<link>_<k>``).
        link: the URDF link it belongs to.
        joint: index of the reduced model's joint that carries it.
        T_joint_prim: ``(4, 4)`` placement in the joint frame; the primitive's
            axis (cylinder) is its local z.
        kind: ``"sphere"`` or ``"cylinder"``.
        radius: radius (m).
        half_length: half the cylinder length along z (m); 0 for a sphere.
    """

    name: str
    link: str
    joint: int
    T_joint_prim: np.ndarray
    kind: str
    radius: float
    half_length: float


def _planar_root() -> pin.JointModelComposite:
    root = pin.JointModelComposite(3)
    root.addJoint(pin.JointModelPX())
    root.addJoint(pin.JointModelPY())
    root.addJoint(pin.JointModelRZ())
    return root


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: rotations ``(N, 3, 3)`` about a fixed unit axis by angles ``(N,)``."""
    c, s = np.cos(angle), np.sin(angle)
    x, y, z = axis
    C = 1.0 - c
    R = np.empty(angle.shape + (3, 3))
    R[..., 0, 0] = c + x * x * C
    R[..., 0, 1] = x * y * C - z * s
    R[..., 0, 2] = x * z * C + y * s
    R[..., 1, 0] = y * x * C + z * s
    R[..., 1, 1] = c + y * y * C
    R[..., 1, 2] = y * z * C - x * s
    R[..., 2, 0] = z * x * C - y * s
    R[..., 2, 1] = z * y * C + x * s
    R[..., 2, 2] = c + z * z * C
    return R


class WholeBodyModel:
    """A mobile manipulator as an (3 + n)-DoF whole-body Pinocchio model.

    Args:
        config: robot configuration (URDF, frame and joint names).

    Raises:
        DescriptionError: the URDF lacks a configured joint or frame, or uses a
            joint type the vectorized path does not handle.

    Example:
        >>> robot = WholeBodyModel(RobotConfig())
        >>> T = robot.fk(np.zeros((1, robot.nq)))[robot.config.tool_frame]
    """

    def __init__(self, config: RobotConfig | None = None) -> None:
        self.config = config = config or RobotConfig()
        path = config.urdf_path()
        self.urdf_path: Path = path
        self.urdf_text = path.read_text()
        self.urdf_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        full = pin.buildModelFromUrdf(str(path), _planar_root())
        try:
            geom = pin.buildGeomFromUrdf(full, str(path), pin.COLLISION)
        except Exception:  # meshes that cannot be found: no occluders
            geom = pin.GeometryModel()
        names = list(full.names)
        missing = [j for j in config.arm_joints if j not in names]
        if missing:
            raise DescriptionError(
                f"joints {missing} of robot.arm_joints are not in {path}; it has {names[2:]}")
        lock = [full.getJointId(n) for n in names[2:] if n not in config.arm_joints]
        if lock:
            self.model, self.geom_model = pin.buildReducedModel(
                full, geom, lock, pin.neutral(full))
        else:
            self.model, self.geom_model = full, geom
        self.data = self.model.createData()
        order = [self.model.names[j] for j in range(2, self.model.njoints)]
        if tuple(order) != tuple(config.arm_joints):
            raise DescriptionError(
                f"robot.arm_joints {list(config.arm_joints)} must follow the kinematic order "
                f"of the description: {order}")
        self.nq = self.model.nq
        if self.nq != 3 + len(config.arm_joints) or self.model.nv != self.nq:
            raise DescriptionError(
                f"only single-DoF arm joints are supported; the reduced model has nq="
                f"{self.nq}, nv={self.model.nv}")
        self.joint_names: tuple[str, ...] = BASE_JOINTS + tuple(config.arm_joints)
        lo = np.array(self.model.lowerPositionLimit, dtype=float)
        hi = np.array(self.model.upperPositionLimit, dtype=float)
        lo[:3], hi[:3] = -np.inf, np.inf
        lo[lo < -1e300], hi[hi > 1e300] = -np.inf, np.inf
        self.lower, self.upper = lo, hi
        self._bounded = np.flatnonzero(np.isfinite(lo) & np.isfinite(hi))
        self._frame_cache: dict[str, tuple[int, np.ndarray]] = {}
        for f in (config.base_frame, config.tool_frame, config.camera.frame):
            self.frame_id(f)
        self._build_chain()
        self.primitives: tuple[Primitive, ...] = self._collect_primitives()

    # ------------------------------------------------------------------ frames
    def frame_id(self, name: str) -> int:
        """Return the Pinocchio frame index of ``name``.

        Raises:
            UnknownFrame: no frame of that name in the description.
        """
        if not self.model.existFrame(name):
            known = sorted({f.name for f in self.model.frames if f.name != "universe"})
            raise UnknownFrame(f"frame {name!r} is not in {self.urdf_path.name}; known: {known}")
        return self.model.getFrameId(name)

    def frame_placement(self, name: str) -> tuple[int, np.ndarray]:
        """Return (parent joint index, ``T_joint_frame`` (4, 4)) of a frame (a copy)."""
        cached = self._frame_cache.get(name)
        if cached is None:
            fr = self.model.frames[self.frame_id(name)]
            cached = self._frame_cache[name] = (fr.parentJoint, fr.placement.homogeneous.copy())
        return cached[0], cached[1].copy()

    # -------------------------------------------------------------- the chain
    def _build_chain(self) -> None:
        m = self.model
        self._parents = [m.parents[j] for j in range(m.njoints)]
        self._placements = [m.jointPlacements[j].homogeneous.copy() for j in range(m.njoints)]
        self._axes: list[np.ndarray | None] = [None, None]
        # per arm joint: the pair of columns its rotation mixes, or None (generic axis)
        self._mix: list[tuple[int, int] | None] = [None, None]
        for j in range(2, m.njoints):
            short = m.joints[j].shortname()
            if short == "JointModelRZ":
                axis, mix = np.array([0.0, 0.0, 1.0]), (0, 1)
            elif short == "JointModelRX":
                axis, mix = np.array([1.0, 0.0, 0.0]), (1, 2)
            elif short == "JointModelRY":
                axis, mix = np.array([0.0, 1.0, 0.0]), (2, 0)
            elif short == "JointModelRevoluteUnaligned":
                axis, mix = np.array(m.joints[j].extract().axis, dtype=float), None
            else:
                raise DescriptionError(
                    f"joint {m.names[j]!r} is {short}; the vectorized FK handles revolute "
                    "arm joints only")
            self._axes.append(axis)
            self._mix.append(mix)
        self._qidx = [m.idx_qs[j] for j in range(m.njoints)]
        self._jacobian_paths: dict[int, tuple] = {}
        # (4, 3) transposed [R | p] of each joint placement, for matmul((4, 3), (3, 3, N))
        self._placement_T43 = [np.ascontiguousarray(P[:3, :].T) for P in self._placements]

    def _arm_chain(self, c: np.ndarray, s: np.ndarray, upto: int | None = None,
                   q: np.ndarray | None = None) -> np.ndarray:
        """Poses of the joint frames, structure-of-arrays.

        Args:
            c: ``(n_arm, N)`` cosines of the arm joint angles, in configuration order.
            s: ``(n_arm, N)`` sines of the same.
            upto: last joint index to evaluate (default: all).
            q: ``(N, nq)`` configurations whose base part places the root
                (world poses); None: the base at zero (poses in the base frame).

        Returns:
            ``(njoints, 3, 4, N)`` ``[R | p]`` per joint (``oMi`` without the last
            row); entry 0 (the universe) is zeros, entries after ``upto`` are unset.
        """
        n = c.shape[1]
        nj = self.model.njoints
        upto = nj - 1 if upto is None else upto
        T = np.empty((nj, 3, 4, n))
        T[0] = 0.0
        P1 = self._placements[1][:3, :, None]
        if q is None:
            T[1] = P1
        else:  # oMi[1] = placement @ planar(x, y, yaw): a mix of the first two columns
            cy, sy = np.cos(q[:, 2]), np.sin(q[:, 2])
            T[1, :, 0] = P1[:, 0] * cy + P1[:, 1] * sy
            T[1, :, 1] = P1[:, 1] * cy - P1[:, 0] * sy
            T[1, :, 2] = P1[:, 2]
            T[1, :, 3] = P1[:, 0] * q[:, 0] + P1[:, 1] * q[:, 1] + P1[:, 3]
        tmp = np.empty((3, n))
        for j in range(2, upto + 1):
            par = T[self._parents[j]]
            out = T[j]
            # out = T_par @ placement (rotation part and offset of the translation)
            np.matmul(self._placement_T43[j], par[:, :3, :], out=out)
            out[:, 3] += par[:, 3]
            row = self._qidx[j] - 3  # this joint's entry among the arm joints
            cj, sj = c[row], s[row]
            mix = self._mix[j]
            if mix is not None:
                a, b = mix  # column a' = c a + s b, column b' = c b - s a
                np.multiply(out[:, a], sj, out=tmp)
                out[:, a] *= cj
                out[:, a] += out[:, b] * sj
                out[:, b] *= cj
                out[:, b] -= tmp
            else:
                A = out[:, :3].copy()
                ang = np.arctan2(sj, cj)
                R = np.moveaxis(_axis_rotation(self._axes[j], ang), 0, -1)  # (3, 3, N)
                for k in range(3):
                    out[:, k] = A[:, 0] * R[0, k] + A[:, 1] * R[1, k] + A[:, 2] * R[2, k]
        return T

    def _jacobian_path(self, j_f: int):
        """Joints from ``j_f`` down to the root as index arrays for a vectorized Jacobian:
        ``(joints, axis column of each, configuration column of each)``, or
        ``(None, None, None)`` when an axis is not a coordinate axis of its joint."""
        js = []
        j = j_f
        while j > 1:
            if self._mix[j] is None:
                return None, None, None
            js.append(j)
            j = self._parents[j]
        axis_col = np.array([3 - self._mix[j][0] - self._mix[j][1] for j in js], dtype=int)
        return (np.array(js, dtype=int), axis_col,
                np.array([self._qidx[j] for j in js], dtype=int))

    def _arm_sincos(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cosines and sines ``(n_arm, N)`` of the arm joint angles of ``q`` ``(N, nq)``."""
        qa = np.ascontiguousarray(q[:, 3:].T)
        return np.cos(qa), np.sin(qa)

    def _check_q(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.nq:
            raise InvalidRequest(f"configurations must have shape (N, {self.nq}), got {q.shape}")
        return q

    def joint_transforms(self, q: np.ndarray) -> np.ndarray:
        """Vectorized ``oMi``: poses of every joint frame in the world.

        Args:
            q: ``(N, nq)`` whole-body configurations.

        Returns:
            ``(N, njoints, 4, 4)``; index 0 is the world (identity).
        """
        q = self._check_q(q)
        n = q.shape[0]
        T = self._arm_chain(*self._arm_sincos(q), q=q)[1:]
        out = np.empty((n, self.model.njoints, 4, 4))
        out[:, 1:, :3, :] = T.transpose(3, 0, 1, 2)
        out[:, 1:, 3, :] = (0.0, 0.0, 0.0, 1.0)
        out[:, 0] = np.eye(4)
        return out

    def base_chain(self, q: np.ndarray) -> np.ndarray:
        """Joint poses in the base frame (the base part of ``q`` ignored), structure-of-arrays.

        Args:
            q: ``(N, nq)`` configurations.

        Returns:
            ``(njoints, 3, 4, N)``: ``[R | p]`` of every joint frame relative to
            the base frame; entry 0 is unused. Cheaper than :meth:`joint_transforms`
            for batch work (no ``(N, njoints, 4, 4)`` layout), and exact at any
            distance of the base from the world origin.
        """
        return self._arm_chain(*self._arm_sincos(self._check_q(q)))

    def frame_in_chain(self, chain: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Pose of a named frame from a structure-of-arrays chain.

        Args:
            chain: ``(njoints, 3, 4, N)`` from :meth:`base_chain`.
            name: frame name.

        Returns:
            ``(p, R)``: origins ``(3, N)`` and rotations ``(3, 3, N)`` in the
            chain's frame.
        """
        j, T = self.frame_placement(name)
        if j == 0:  # a frame on the universe: constant
            n = chain.shape[-1]
            return (np.repeat(T[:3, 3, None], n, axis=1),
                    np.repeat(T[:3, :3, None], n, axis=2))
        X = chain[j]
        t = T[:3, 3]
        p = X[:, 0] * t[0] + X[:, 1] * t[1] + X[:, 2] * t[2] + X[:, 3]
        R = np.einsum("imn,mk->ikn", X[:, :3], T[:3, :3])
        return p, R

    def fk(self, q: np.ndarray, frames: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Vectorized forward kinematics of named frames.

        Args:
            q: ``(N, nq)`` whole-body configurations.
            frames: frame names; default the tool frame and the front camera frame.

        Returns:
            Mapping frame name -> ``(N, 4, 4)`` world poses ``T_world_frame``.
        """
        frames = tuple(frames) if frames is not None else (
            self.config.tool_frame, self.config.camera.frame)
        q = self._check_q(q)
        placed = [self.frame_placement(name) for name in frames]
        upto = max([j for j, _ in placed], default=1)
        chain = self._arm_chain(*self._arm_sincos(q), upto=upto, q=q)
        F = np.empty((len(frames), 3, 4, q.shape[0]))
        for k, (j, T_jf) in enumerate(placed):
            if j == 0:  # a frame on the universe: constant
                F[k] = T_jf[:3, :, None]
                continue
            np.matmul(np.ascontiguousarray(T_jf[:3, :].T), chain[j, :, :3, :], out=F[k])
            F[k, :, 3] += chain[j, :, 3]
        out = {}
        for k, name in enumerate(frames):
            M = np.empty((q.shape[0], 4, 4))
            M[:, :3, :] = F[k].transpose(2, 0, 1)
            M[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
            out[name] = M
        return out

    def fk_pinocchio(self, q: np.ndarray, frame: str) -> np.ndarray:
        """Reference FK with Pinocchio, one configuration at a time: ``(N, 4, 4)``."""
        q = self._check_q(q)
        fid = self.frame_id(frame)
        out = np.empty((q.shape[0], 4, 4))
        for i, qi in enumerate(q):
            pin.framesForwardKinematics(self.model, self.data, qi)
            out[i] = self.data.oMf[fid].homogeneous
        return out

    def jacobian(self, q: np.ndarray, frame: str | None = None,
                 oMi: np.ndarray | None = None, chain: np.ndarray | None = None) -> np.ndarray:
        """Vectorized whole-body Jacobian of a frame, world-aligned at the frame origin.

        Args:
            q: ``(N, nq)`` configurations.
            frame: frame name, default the tool frame.
            oMi: optional precomputed :meth:`joint_transforms` of ``q``.
            chain: optional precomputed structure-of-arrays chain of ``q``
                (``(njoints, 3, 4, N)``, e.g. :meth:`base_chain` with the base of
                ``q`` at zero).

        Returns:
            ``(N, 6, nq)``: rows (vx, vy, vz, wx, wy, wz), columns d/dq (same
            convention as Pinocchio's ``LOCAL_WORLD_ALIGNED``).
        """
        q = self._check_q(q)
        frame = frame or self.config.tool_frame
        j_f, T = self.frame_placement(frame)
        if chain is not None:
            X = chain
        elif oMi is None:  # structure-of-arrays chain, no (N, njoints, 4, 4) detour
            X = self._arm_chain(*self._arm_sincos(q), upto=max(j_f, 1), q=q)
        else:
            X = np.asarray(oMi)[:, :, :3, :].transpose(1, 2, 3, 0)  # view (nj, 3, 4, N)
        t = T[:3, 3]
        Xf = X[j_f]
        p = Xf[:, 0] * t[0] + Xf[:, 1] * t[1] + Xf[:, 2] * t[2] + Xf[:, 3]  # (3, N)
        n = q.shape[0]
        J = np.zeros((6, self.nq, n))
        J[0, 0] = 1.0
        J[1, 1] = 1.0
        # yaw about world z through the base origin
        J[0, 2] = q[:, 1] - p[1]
        J[1, 2] = p[0] - q[:, 0]
        J[5, 2] = 1.0
        self._arm_jacobian_soa(X, p, j_f, J, offset=0)
        return np.ascontiguousarray(J.transpose(2, 0, 1))

    def _arm_jacobian_soa(self, X: np.ndarray, p: np.ndarray, j_f: int, J: np.ndarray,
                          offset: int = 3) -> None:
        """Fill the arm columns of a structure-of-arrays Jacobian.

        Args:
            X: joint poses ``(njoints, 3, 4, N)`` (world or base frame, like ``p``).
            p: ``(3, N)`` origin of the frame whose Jacobian is wanted.
            j_f: index of the joint that carries the frame.
            J: ``(6, ncols, N)`` output; the arm joint at configuration index ``i``
                goes to column ``i - offset``.
            offset: 0 for a whole-body Jacobian, 3 for arm-only columns.
        """
        path = self._jacobian_paths.get(j_f)
        if path is None:
            path = self._jacobian_paths[j_f] = self._jacobian_path(j_f)
        if path[0] is not None:  # every axis on the path is a column of its joint's rotation
            js, axis_col, cols = path
            Z = X[js, :, axis_col].transpose(1, 0, 2)  # (3, n_path, N)
            V = p[:, None] - X[js, :, 3].transpose(1, 0, 2)
            c = cols - offset
            J[0, c] = Z[1] * V[2] - Z[2] * V[1]
            J[1, c] = Z[2] * V[0] - Z[0] * V[2]
            J[2, c] = Z[0] * V[1] - Z[1] * V[0]
            J[3:, c] = Z
            return
        j = j_f
        while j > 1:
            col = self._qidx[j] - offset
            mix = self._mix[j]
            if mix is not None:  # the axis is a column of the joint's rotation
                z = X[j, :, 3 - mix[0] - mix[1]]
            else:
                a = self._axes[j]
                z = X[j, :, 0] * a[0] + X[j, :, 1] * a[1] + X[j, :, 2] * a[2]
            v = p - X[j, :, 3]
            J[0, col] = z[1] * v[2] - z[2] * v[1]
            J[1, col] = z[2] * v[0] - z[0] * v[2]
            J[2, col] = z[0] * v[1] - z[1] * v[0]
            J[3:, col] = z
            j = self._parents[j]

    def jacobian_pinocchio(self, q: np.ndarray, frame: str | None = None) -> np.ndarray:
        """Reference Jacobian with Pinocchio (LOCAL_WORLD_ALIGNED), ``(N, 6, nq)``."""
        q = self._check_q(q)
        fid = self.frame_id(frame or self.config.tool_frame)
        out = np.empty((q.shape[0], 6, self.nq))
        for i, qi in enumerate(q):
            out[i] = pin.computeFrameJacobian(self.model, self.data, qi, fid,
                                              pin.LOCAL_WORLD_ALIGNED)
        return out

    # ---------------------------------------------------------------- limits
    def within_limits(self, q: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """Return ``(N,)`` booleans: every joint within its limits (+ ``tol``)."""
        q = self._check_q(q)
        return ((q >= self.lower - tol) & (q <= self.upper + tol)).all(axis=1)

    def limit_margin(self, q: np.ndarray) -> np.ndarray:
        """Smallest normalized distance to a joint limit, ``(N,)``.

        0 at a limit, 0.5 with every bounded joint at mid-range, negative outside.
        """
        q = self._check_q(q)
        b = self._bounded
        if not b.size:
            return np.full(len(q), 0.5)
        lo, hi = self.lower[b], self.upper[b]
        x = (q[:, b] - lo) / (hi - lo)
        return np.minimum(x, 1.0 - x).min(axis=1)

    def clip_to_limits(self, q: np.ndarray) -> np.ndarray:
        """Clip configurations into the joint limits."""
        return np.clip(self._check_q(q), self.lower, self.upper)

    def random_configurations(self, n: int, rng: np.random.Generator,
                              base_extent_m: float = 1.0) -> np.ndarray:
        """Uniform configurations: arm within limits, base in a square, any yaw."""
        q = np.empty((n, self.nq))
        q[:, :2] = rng.uniform(-base_extent_m, base_extent_m, size=(n, 2))
        q[:, 2] = rng.uniform(-np.pi, np.pi, size=n)
        q[:, 3:] = rng.uniform(self.lower[3:], self.upper[3:], size=(n, self.nq - 3))
        return q

    def manipulability(self, q: np.ndarray, oMi: np.ndarray | None = None,
                       chain: np.ndarray | None = None,
                       jacobian: np.ndarray | None = None) -> np.ndarray:
        """Positional manipulability of the arm alone, ``(N,)``.

        Yoshikawa's measure ``sqrt(det(Jp Jp^T))`` of the 3 x n_arm position
        Jacobian of the tool frame with respect to the arm joints (m^3);
        zero at a singularity (arm stretched out or folded onto itself).
        ``jacobian``: the tool's :meth:`jacobian` of ``q`` when already computed.
        """
        if jacobian is None:
            jacobian = self.jacobian(q, oMi=oMi, chain=chain)
        J = jacobian[:, :3, 3:]
        r0, r1, r2 = np.ascontiguousarray(J.transpose(1, 2, 0))  # rows, (n_arm, N) each
        # Gram matrix G = Jp Jp^T (symmetric 3 x 3) and its determinant, explicitly
        g00, g11, g22 = (r0 * r0).sum(0), (r1 * r1).sum(0), (r2 * r2).sum(0)
        g01, g02, g12 = (r0 * r1).sum(0), (r0 * r2).sum(0), (r1 * r2).sum(0)
        det = (g00 * (g11 * g22 - g12 * g12) - g01 * (g01 * g22 - g12 * g02)
               + g02 * (g01 * g12 - g11 * g02))
        return np.sqrt(np.maximum(det, 0.0))

    # -------------------------------------------------------------- geometry
    def _collect_primitives(self) -> tuple[Primitive, ...]:
        out = []
        for obj in self.geom_model.geometryObjects:
            g = obj.geometry
            kind = type(g).__name__
            if kind == "Sphere":
                kind, half = "sphere", 0.0
            elif kind == "Cylinder":
                kind, half = "cylinder", float(g.halfLength)
            else:  # meshes and boxes are not used as occluders
                continue
            link = self.model.frames[obj.parentFrame].name
            out.append(Primitive(obj.name, link, int(obj.parentJoint),
                                 obj.placement.homogeneous.copy(), kind, float(g.radius), half))
        return tuple(out)

    def primitives_excluding(self, links: Sequence[str]) -> tuple[Primitive, ...]:
        """Collision primitives of every link but ``links``."""
        skip = set(links)
        return tuple(p for p in self.primitives if p.link not in skip)

    def frame_pose_in_joint(self, name: str) -> np.ndarray:
        """``T_joint_frame`` of a frame relative to its parent joint (alias for clarity)."""
        return self.frame_placement(name)[1]


def base_pose_matrix(q: np.ndarray) -> np.ndarray:
    """World poses ``(N, 4, 4)`` of the base frame for configurations ``(N, >=3)``."""
    q = np.atleast_2d(q)
    c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
    R = np.zeros((len(q), 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return make_transform(R, np.stack([q[:, 0], q[:, 1], np.zeros(len(q))], axis=1))
