"""The kinematic chain of a whole-body model as an immutable object, and its batched FK.

Pinocchio splits a robot into a constant ``Model`` and a scratch ``Data`` per
worker; :class:`KinematicChain` is the constant half of the vectorized path:
joint parents, placements, axes and index tables, read once from the reduced
Pinocchio model by :meth:`KinematicChain.from_model` and frozen (the arrays
are read-only). Every method allocates its own scratch, so one chain serves
any number of threads.

Layout (the hot loop of the proposal service): the chain is evaluated in a
structure-of-arrays layout, one ``(3, 4, N)`` array ``[R | p]`` per joint with
the configurations on the last (contiguous) axis. The constant joint
placement is applied with one small matrix product per joint,
``matmul((4, 3), (3, 3, N))``, and the joint's own rotation is a mix of two
columns only (a revolute joint about z, x or y changes a 2 x 2 block). The
root (the planar base joint) starts the chain; with the base at zero the same
chain gives poses in the base frame.

Joint indices are Pinocchio's: 0 is the universe, 1 the planar base, 2... the
arm joints; the arm joint ``j`` is row ``arm_rows[j]`` of the ``(n_arm, N)``
cosine and sine arrays (``q[:, 3 + row]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np
import pinocchio as pin

from .errors import DescriptionError

# Pinocchio's revolute joints about a coordinate axis: (axis, the pair of columns of the
# rotation that the joint angle mixes)
_COORDINATE_AXES = {
    "JointModelRZ": ((0.0, 0.0, 1.0), (0, 1)),
    "JointModelRX": ((1.0, 0.0, 0.0), (1, 2)),
    "JointModelRY": ((0.0, 1.0, 0.0), (2, 0)),
}


def axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: rotations ``(..., 3, 3)`` about a unit axis ``(3,)`` by angles ``(...)``."""
    c, s = np.cos(angle), np.sin(angle)
    x, y, z = axis
    C = 1.0 - c
    R = np.empty(np.shape(angle) + (3, 3))
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


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class JacobianPath:
    """The joints from one joint down to the root, as index arrays for a vectorized Jacobian.

    Attributes:
        joints: ``(K,)`` joint indices (the joint itself first).
        axis_columns: ``(K,)`` the column of each joint's rotation that is its
            axis, or None when an axis on the path is not a coordinate axis of
            its joint (then the Jacobian takes the per-joint loop).
        q_columns: ``(K,)`` configuration index of each joint.
    """

    joints: np.ndarray
    axis_columns: np.ndarray | None
    q_columns: np.ndarray


@dataclass(frozen=True, eq=False)
class KinematicChain:
    """Constants of a planar base plus revolute arm joints (the vectorized FK's model).

    Build with :meth:`from_model`. Per-joint tuples are indexed by Pinocchio
    joint index; entries 0 (universe) and 1 (planar base) of ``axes``,
    ``mix`` and ``arm_rows`` are placeholders (None / -1).

    Attributes:
        njoints: number of joints, universe and base included.
        n_arm: number of arm joints.
        parents: parent joint index of each joint.
        placements: ``(4, 4)`` constant placement of each joint in its parent
            (read-only).
        axes: unit axis ``(3,)`` of each arm joint, in its own frame.
        mix: the pair of rotation columns ``(a, b)`` an arm joint's angle mixes
            (``a' = c a + s b``, ``b' = c b - s a``), or None for an axis that
            is not a coordinate axis.
        arm_rows: row of each arm joint in the ``(n_arm, N)`` angle arrays.
        jacobian_paths: the :class:`JacobianPath` of every joint.
        frames: frame name -> ``(parent joint, T_joint_frame (4, 4))``, read-only.
    """

    njoints: int
    n_arm: int
    parents: tuple[int, ...]
    placements: tuple[np.ndarray, ...]
    axes: tuple[np.ndarray | None, ...]
    mix: tuple[tuple[int, int] | None, ...]
    arm_rows: tuple[int, ...]
    jacobian_paths: tuple[JacobianPath, ...]
    frames: Mapping[str, tuple[int, np.ndarray]]
    placements_T43: tuple[np.ndarray, ...]

    # ------------------------------------------------------------ building
    @classmethod
    def from_model(cls, model: pin.Model) -> KinematicChain:
        """Read the chain from a reduced Pinocchio model (planar root + 1-DoF revolute joints).

        Args:
            model: joint 1 the planar base (3 DoF), joints 2... revolute.

        Raises:
            DescriptionError: an arm joint that is not revolute.
        """
        nj = model.njoints
        parents = tuple(int(model.parents[j]) for j in range(nj))
        placements = tuple(_frozen(model.jointPlacements[j].homogeneous) for j in range(nj))
        axes: list[np.ndarray | None] = [None, None]
        mix: list[tuple[int, int] | None] = [None, None]
        for j in range(2, nj):
            short = model.joints[j].shortname()
            if short in _COORDINATE_AXES:
                axis, m = _COORDINATE_AXES[short]
            elif short == "JointModelRevoluteUnaligned":
                axis, m = model.joints[j].extract().axis, None
            else:
                raise DescriptionError(
                    f"joint {model.names[j]!r} is {short}; the vectorized FK handles revolute "
                    "arm joints only")
            axes.append(_frozen(axis))
            mix.append(m)
        arm_rows = (-1, -1) + tuple(int(model.idx_qs[j]) - 3 for j in range(2, nj))
        paths = tuple(cls._path(j, parents, mix, model) for j in range(nj))
        frames: dict[str, tuple[int, np.ndarray]] = {}
        for fr in model.frames:  # the first frame of a name, like model.getFrameId
            frames.setdefault(fr.name, (int(fr.parentJoint), _frozen(fr.placement.homogeneous)))
        # (4, 3) transposed [R | p] of each placement, for matmul((4, 3), (3, 3, N))
        T43 = tuple(_frozen(np.ascontiguousarray(P[:3, :].T)) for P in placements)
        return cls(nj, nj - 2, parents, placements, tuple(axes), tuple(mix), arm_rows, paths,
                   MappingProxyType(frames), T43)

    @staticmethod
    def _path(j_f: int, parents, mix, model) -> JacobianPath:
        js = []
        j = j_f
        while j > 1:
            js.append(j)
            j = parents[j]
        joints = np.array(js, dtype=int)
        cols = np.array([int(model.idx_qs[j]) for j in js], dtype=int)
        if any(mix[j] is None for j in js):
            axis_cols = None
        else:
            axis_cols = np.array([3 - mix[j][0] - mix[j][1] for j in js], dtype=int)
        for a in (joints, cols, axis_cols):
            if a is not None:
                a.setflags(write=False)
        return JacobianPath(joints, axis_cols, cols)

    # ------------------------------------------------------------ queries
    def path_to_root(self, j: int) -> tuple[int, ...]:
        """Arm joints from the root out to joint ``j`` (``j`` last; empty for ``j <= 1``)."""
        return tuple(int(i) for i in self.jacobian_paths[j].joints[::-1])

    # ----------------------------------------------------------- batched FK
    @staticmethod
    def sincos(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cosines and sines ``(n_arm, N)`` of the arm joint angles of ``q`` ``(N, nq)``."""
        qa = np.ascontiguousarray(q[:, 3:].T)
        return np.cos(qa), np.sin(qa)

    def poses(self, c: np.ndarray, s: np.ndarray, upto: int | None = None,
              q: np.ndarray | None = None) -> np.ndarray:
        """Poses of the joint frames, structure-of-arrays.

        Args:
            c: ``(n_arm, N)`` cosines of the arm joint angles (:meth:`sincos`).
            s: ``(n_arm, N)`` sines of the same.
            upto: last joint index to evaluate (default: all).
            q: ``(N, nq)`` configurations whose base part places the root
                (world poses); None: the base at zero (poses in the base frame).

        Returns:
            ``(njoints, 3, 4, N)`` ``[R | p]`` per joint (``oMi`` without the last
            row); entry 0 (the universe) is zeros, entries after ``upto`` are unset.
        """
        n = c.shape[1]
        nj = self.njoints
        upto = nj - 1 if upto is None else upto
        T = np.empty((nj, 3, 4, n))
        T[0] = 0.0
        P1 = self.placements[1][:3, :, None]
        if q is None:
            T[1] = P1
        else:  # oMi[1] = placement @ planar(x, y, yaw): a mix of the first two columns
            cy, sy = np.cos(q[:, 2]), np.sin(q[:, 2])
            T[1, :, 0] = P1[:, 0] * cy + P1[:, 1] * sy
            T[1, :, 1] = P1[:, 1] * cy - P1[:, 0] * sy
            T[1, :, 2] = P1[:, 2]
            T[1, :, 3] = P1[:, 0] * q[:, 0] + P1[:, 1] * q[:, 1] + P1[:, 3]
        tmp = np.empty((3, n))
        parents, T43, rows, mixes = self.parents, self.placements_T43, self.arm_rows, self.mix
        for j in range(2, upto + 1):
            par = T[parents[j]]
            out = T[j]
            # out = T_par @ placement (rotation part and offset of the translation)
            np.matmul(T43[j], par[:, :3, :], out=out)
            out[:, 3] += par[:, 3]
            row = rows[j]
            cj, sj = c[row], s[row]
            mix = mixes[j]
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
                R = np.moveaxis(axis_rotation(self.axes[j], ang), 0, -1)  # (3, 3, N)
                for k in range(3):
                    out[:, k] = A[:, 0] * R[0, k] + A[:, 1] * R[1, k] + A[:, 2] * R[2, k]
        return T

    def point_on_joint(self, T: np.ndarray, j: int, p_local: np.ndarray, c: np.ndarray,
                       s: np.ndarray) -> np.ndarray:
        """Positions ``(3, N)`` of a point fixed in joint ``j``'s frame, from its parent's pose.

        Cheaper than evaluating joint ``j`` itself when only one point is wanted:
        the point is turned by the joint angle and placed, then mapped through
        the parent's pose.

        Args:
            T: ``(njoints, 3, 4, N)`` chain from :meth:`poses`, evaluated at least
                up to ``parents[j]``.
            j: an arm joint index (>= 2).
            p_local: ``(3,)`` the point in joint ``j``'s frame.
            c: ``(n_arm, N)`` cosines of the arm joint angles (those ``T`` used).
            s: ``(n_arm, N)`` sines of the same.
        """
        row = self.arm_rows[j]
        cj, sj = c[row], s[row]
        v = np.empty((3, len(cj)))
        mix = self.mix[j]
        if mix is None:
            R = axis_rotation(self.axes[j], np.arctan2(sj, cj))
            v[:] = (R @ p_local).T
        else:
            a, b = mix
            k = 3 - a - b
            v[a] = cj * p_local[a] - sj * p_local[b]
            v[b] = sj * p_local[a] + cj * p_local[b]
            v[k] = p_local[k]
        P = self.placements[j]
        w = P[:3, :3] @ v + P[:3, 3, None]
        par = T[self.parents[j]]
        return (par[:, 0] * w[0] + par[:, 1] * w[1] + par[:, 2] * w[2]) + par[:, 3]

    def jacobian_columns(self, X: np.ndarray, p: np.ndarray, j_f: int, J: np.ndarray,
                         offset: int = 3, vectorized: bool = True) -> None:
        """Fill the arm columns of a structure-of-arrays Jacobian (world-aligned, at ``p``).

        Args:
            X: joint poses ``(njoints, 3, 4, N)`` (world or base frame, like ``p``).
            p: ``(3, N)`` origin of the frame whose Jacobian is wanted.
            j_f: index of the joint that carries the frame.
            J: ``(6, ncols, N)`` output, rows (vx, vy, vz, wx, wy, wz); the arm
                joint at configuration index ``i`` goes to column ``i - offset``.
            offset: 0 for a whole-body Jacobian, 3 for arm-only columns.
            vectorized: False forces the per-joint loop (the path descriptions
                with a non-coordinate axis take; for tests).
        """
        path = self.jacobian_paths[j_f]
        if vectorized and path.axis_columns is not None:
            js = path.joints
            Z = X[js, :, path.axis_columns].transpose(1, 0, 2)  # (3, n_path, N)
            V = p[:, None] - X[js, :, 3].transpose(1, 0, 2)
            cols = path.q_columns - offset
            J[0, cols] = Z[1] * V[2] - Z[2] * V[1]
            J[1, cols] = Z[2] * V[0] - Z[0] * V[2]
            J[2, cols] = Z[0] * V[1] - Z[1] * V[0]
            J[3:, cols] = Z
            return
        for j, col in zip(path.joints, path.q_columns - offset):
            mix = self.mix[j]
            if mix is not None:  # the axis is a column of the joint's rotation
                z = X[j, :, 3 - mix[0] - mix[1]]
            else:
                a = self.axes[j]
                z = X[j, :, 0] * a[0] + X[j, :, 1] * a[1] + X[j, :, 2] * a[2]
            v = p - X[j, :, 3]
            J[0, col] = z[1] * v[2] - z[2] * v[1]
            J[1, col] = z[2] * v[0] - z[0] * v[2]
            J[2, col] = z[0] * v[1] - z[1] * v[0]
            J[3:, col] = z
