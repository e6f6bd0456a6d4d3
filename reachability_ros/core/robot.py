"""The whole-body robot model: URDF -> Pinocchio with a planar base, batched FK.

The configuration of the whole body is ``q = (base_x, base_y, base_yaw,
arm joints...)`` (for the LeKiwi: 3 + 5 = 8 numbers, metres and radians).
Pinocchio is the source of truth. The root is a planar joint built as a
composite of prismatic-x, prismatic-y and revolute-z, so that Pinocchio's
configuration vector *is* ``q`` and its Jacobian columns are d/dx, d/dy,
d/dyaw. Every joint that is not an arm joint (wheels, gripper) is locked at
zero with ``buildReducedModel``.

The constants of the chain live in an immutable
:class:`~reachability_ros.core.chain.KinematicChain` (``robot.chain``); the
vectorized numpy path (:meth:`WholeBodyModel.fk`, :meth:`WholeBodyModel.jacobian`,
:meth:`WholeBodyModel.base_chain`) evaluates it for N configurations at once
and is held to Pinocchio within 1e-9 by the tests. Nothing is written on the
model after construction: one model serves any number of threads (the
Pinocchio reference calls make their own ``Data`` per call).

The collision shapes become :class:`~reachability_ros.core.collision.Primitive`
objects (spheres, cylinders, capsules; meshes and boxes as bounding capsules);
a description whose collision geometry cannot be loaded is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pinocchio as pin

from .chain import KinematicChain
from .collision import Primitive, load_collision_model, primitives_from_geometry
from .config import BASE_JOINTS, RobotConfig
from .errors import DescriptionError, InvalidRequest, UnknownFrame


def _planar_root() -> pin.JointModelComposite:
    root = pin.JointModelComposite(3)
    root.addJoint(pin.JointModelPX())
    root.addJoint(pin.JointModelPY())
    root.addJoint(pin.JointModelRZ())
    return root


class WholeBodyModel:
    """A mobile manipulator as an (3 + n)-DoF whole-body Pinocchio model.

    Args:
        config: robot configuration (URDF, frame and joint names).

    Attributes:
        model: the reduced Pinocchio model (planar root, arm joints).
        geom_model: its collision geometry.
        chain: the immutable :class:`KinematicChain` of ``model``.
        primitives: the collision shapes as spheres, cylinders and capsules.
        lower, upper: ``(nq,)`` joint limits (``-inf``/``inf`` for the base).

    Raises:
        DescriptionError: the URDF lacks a configured joint or frame, uses a
            joint type the vectorized path does not handle, or has collision
            geometry that cannot be loaded or used (the file and the reason
            are named).

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
        geom = load_collision_model(full, path)
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
        lo.setflags(write=False)
        hi.setflags(write=False)
        self.lower, self.upper = lo, hi
        self._bounded = np.flatnonzero(np.isfinite(lo) & np.isfinite(hi))
        self.chain = KinematicChain.from_model(self.model)
        for f in (config.base_frame, config.tool_frame, config.camera.frame):
            self.frame_id(f)
        self.primitives: tuple[Primitive, ...] = primitives_from_geometry(
            self.geom_model, self.model, path)
        self.link_names: frozenset[str] = frozenset(
            f.name for f in self.model.frames if f.type == pin.FrameType.BODY)

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
        """Return (parent joint index, ``T_joint_frame`` (4, 4)) of a frame (a copy).

        Raises:
            UnknownFrame: no frame of that name in the description.
        """
        placed = self.chain.frames.get(name)
        if placed is None:
            self.frame_id(name)  # raises with the known frames
        return placed[0], placed[1].copy()

    # -------------------------------------------------------------- the chain
    def check_q(self, q: np.ndarray) -> np.ndarray:
        """Return ``q`` as a float ``(N, nq)`` array (a single ``(nq,)`` becomes ``(1, nq)``).

        Raises:
            InvalidRequest: any other shape.
        """
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
        q = self.check_q(q)
        n = q.shape[0]
        chain = self.chain
        T = chain.poses(*chain.sincos(q), q=q)[1:]
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
        return self.chain.poses(*self.chain.sincos(self.check_q(q)))

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
        q = self.check_q(q)
        placed = [self.frame_placement(name) for name in frames]
        upto = max([j for j, _ in placed], default=1)
        chain = self.chain.poses(*self.chain.sincos(q), upto=upto, q=q)
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
        q = self.check_q(q)
        fid = self.frame_id(frame)
        data = self.model.createData()  # scratch per call: thread-safe
        out = np.empty((q.shape[0], 4, 4))
        for i, qi in enumerate(q):
            pin.framesForwardKinematics(self.model, data, qi)
            out[i] = data.oMf[fid].homogeneous
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
        q = self.check_q(q)
        frame = frame or self.config.tool_frame
        j_f, T = self.frame_placement(frame)
        if chain is not None:
            X = chain
        elif oMi is None:  # structure-of-arrays chain, no (N, njoints, 4, 4) detour
            X = self.chain.poses(*self.chain.sincos(q), upto=max(j_f, 1), q=q)
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
        self.chain.jacobian_columns(X, p, j_f, J, offset=0)
        return np.ascontiguousarray(J.transpose(2, 0, 1))

    def jacobian_pinocchio(self, q: np.ndarray, frame: str | None = None) -> np.ndarray:
        """Reference Jacobian with Pinocchio (LOCAL_WORLD_ALIGNED), ``(N, 6, nq)``."""
        q = self.check_q(q)
        fid = self.frame_id(frame or self.config.tool_frame)
        data = self.model.createData()  # scratch per call: thread-safe
        out = np.empty((q.shape[0], 6, self.nq))
        for i, qi in enumerate(q):
            out[i] = pin.computeFrameJacobian(self.model, data, qi, fid,
                                              pin.LOCAL_WORLD_ALIGNED)
        return out

    # ---------------------------------------------------------------- limits
    def within_limits(self, q: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """Return ``(N,)`` booleans: every joint within its limits (+ ``tol``)."""
        q = self.check_q(q)
        return ((q >= self.lower - tol) & (q <= self.upper + tol)).all(axis=1)

    def limit_margin(self, q: np.ndarray) -> np.ndarray:
        """Smallest normalized distance to a joint limit, ``(N,)``.

        0 at a limit, 0.5 with every bounded joint at mid-range, negative outside.
        """
        q = self.check_q(q)
        b = self._bounded
        if not b.size:
            return np.full(len(q), 0.5)
        lo, hi = self.lower[b], self.upper[b]
        x = (q[:, b] - lo) / (hi - lo)
        return np.minimum(x, 1.0 - x).min(axis=1)

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
    def primitives_excluding(self, links: Sequence[str]) -> tuple[Primitive, ...]:
        """Collision primitives of every link but ``links``.

        Raises:
            DescriptionError: a name in ``links`` is not a link of the description
                (a misspelt exclusion would silently keep the camera body or the
                gripper as an occluder).
        """
        skip = set(links)
        unknown = sorted(skip - self.link_names)
        if unknown:
            raise DescriptionError(
                f"links {unknown} (robot.occlusion_exclude_links) are not links of "
                f"{self.urdf_path.name}; its links with collision shapes are "
                f"{sorted({p.link for p in self.primitives})}")
        return tuple(p for p in self.primitives if p.link not in skip)
