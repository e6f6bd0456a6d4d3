"""Grasp freedom and grasp sets: the exact tool poses a request's grasps expand into.

A request holds a main grasp and optional *alternatives* (any one of them will do:
the candidates of a grasp detector). Each grasp may allow some freedom about its
approach axis, the tool's +z (``Grasp.symmetric``, ``Grasp.free_roll``). The
pipeline does not sample "a grasp with freedom": it samples proposals for
*targets*, exact tool poses that each serve one grasp of the request, and solves
every proposal exactly for its own target (the closed-form solver takes one grasp
pose per row):

* a fixed grasp is one target, the grasp itself;
* a symmetric grasp is two targets, the grasp and its flip by pi about the
  approach axis (quaternion ``q (x) (0, 0, 1, 0) = (y, -x, w, -z)``, exact). Both
  use the same noise draws, the ones a request for either flip alone would use,
  and each flip is a ranking *group* of its own (``Targets.group``): the pipeline
  picks a diverse top-k in each group, measures the robustness of all of them and
  keeps the best across the groups, so the answer is never worse than the better
  single-flip request (the test holds it to that);
* a free roll adds one coordinate to the LeKiwi's stance set (a 3-D family: the
  roll about the approach axis, then the 2-D closed form at that roll). It is
  sampled: targets ``q (x) (0, 0, sin(r / 2), cos(r / 2))`` with rolls ``r``
  stratified at random over the circle, one target per proposal (samplers with
  noise), or an even grid of :data:`GRID_ROLLS` rolls, ``r = 0`` (the requested
  roll) included, each with the whole grid of a fixed grasp (the grid sampler).

Every target keeps the request's position, so a stance's ``tool_pose`` differs from
its grasp only by a rotation about the approach axis.

Caps: a request holds at most :data:`MAX_ALTERNATIVES` alternatives (a larger set is
refused with a reason; split it into several requests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import InvalidRequest
from .geometry import quat_to_matrix
from .types import Grasp

#: Most alternatives one request may carry (a detector's candidates: tens to hundreds).
MAX_ALTERNATIVES = 1000
#: Rolls of the grid sampler's free-roll grid (evenly spaced over the circle, 0 included).
GRID_ROLLS = 8


def flip_quaternion(q: Sequence[float]) -> tuple[float, float, float, float]:
    """Turn a quaternion (x, y, z, w) by pi about its own +z: ``q (x) (0, 0, 1, 0)``.

    Exact (a permutation with signs): the flip of the flip is ``-q``, the same rotation.
    """
    x, y, z, w = (float(v) for v in q)
    return (y, -x, w, -z)


def roll_quaternions(q: Sequence[float] | np.ndarray, roll_rad: np.ndarray) -> np.ndarray:
    """Turn quaternions (x, y, z, w) about their own +z by each roll: ``(n, 4)``.

    ``q (x) (0, 0, sin(r / 2), cos(r / 2))``; the norm of ``q`` is kept.

    Args:
        q: ``(4,)`` one quaternion, or ``(n, 4)`` one per roll.
        roll_rad: ``(n,)`` rotations about the tool's +z (rad).
    """
    q = np.asarray(q, dtype=float)
    x, y, z, w = (q[..., i] for i in range(4))
    half = 0.5 * np.asarray(roll_rad, dtype=float)
    c, s = np.cos(half), np.sin(half)
    return np.stack([x * c + y * s, y * c - x * s, z * c + w * s, w * c - z * s], axis=-1)


def roll_between(q_from: Sequence[float], q_to: Sequence[float]) -> float:
    """Angle (rad, in (-pi, pi]) about its own +z that turns ``q_from`` into ``q_to``.

    Meaningful when the two differ only by such a turn (a ``tool_pose`` and its grasp);
    the part of the relative rotation off the z axis is ignored.
    """
    x1, y1, z1, w1 = (float(v) for v in q_from)
    x2, y2, z2, w2 = (float(v) for v in q_to)
    # z and w components of conj(q_from) (x) q_to
    z = w1 * z2 - x1 * y2 + y1 * x2 - z1 * w2
    w = w1 * w2 + x1 * x2 + y1 * y2 + z1 * z2
    return math.remainder(2.0 * math.atan2(z, w), 2.0 * math.pi)


@dataclass(frozen=True)
class Targets:
    """The exact tool poses proposals are drawn for, and the rows drawn for each.

    Attributes:
        T: ``(P, 4, 4)`` target poses of the tool frame in the world.
        quat: ``(P, 4)`` their orientations (x, y, z, w).
        grasp_index: ``(P,)`` the grasp of the request each target serves (0 main).
        roll_rad: ``(P,)`` its rotation about the approach axis from that grasp.
        group: ``(P,)`` ranking group: 1 for the flipped target of a symmetric
            grasp, else 0.
        free: ``(P,)`` the target's grasp takes any roll (``Grasp.free_roll``).
        rows: ``(n,)`` the target of each proposal, grouped by target.
        noise: ``(n,)`` the noise draw of each proposal: the two flips of a
            symmetric grasp share draws, every other row has its own.
        n_noise: number of noise draws.
    """

    T: np.ndarray
    quat: np.ndarray
    grasp_index: np.ndarray
    roll_rad: np.ndarray
    group: np.ndarray
    free: np.ndarray
    rows: np.ndarray
    noise: np.ndarray
    n_noise: int

    @property
    def n_groups(self) -> int:
        """Number of ranking groups (2 when a symmetric grasp is in the request)."""
        return int(self.group.max()) + 1 if self.group.size else 1

    def concat(self, other: Targets) -> Targets:
        """Return these targets and ``other``'s, with ``other``'s rows after these.

        The two rounds of proposals of one request (the world's fallback after the first
        round) keep their own noise draws.
        """
        P = self.T.shape[0]
        return Targets(np.concatenate([self.T, other.T]),
                       np.concatenate([self.quat, other.quat]),
                       np.concatenate([self.grasp_index, other.grasp_index]),
                       np.concatenate([self.roll_rad, other.roll_rad]),
                       np.concatenate([self.group, other.group]),
                       np.concatenate([self.free, other.free]),
                       np.concatenate([self.rows, other.rows + P]),
                       np.concatenate([self.noise, other.noise + self.n_noise]),
                       self.n_noise + other.n_noise)


def check_flags(grasp: Grasp, where: str) -> None:
    """Refuse freedom flags that are not booleans.

    Raises:
        InvalidRequest: ``symmetric`` or ``free_roll`` is not True or False.
    """
    for name in ("symmetric", "free_roll"):
        v = getattr(grasp, name)
        if not isinstance(v, (bool, np.bool_)):
            raise InvalidRequest(f"{where}{name} must be true or false, got {v!r}")


def check_alternatives(alternatives) -> tuple:
    """Check the container of alternatives (not the grasps); return it as a tuple.

    Raises:
        InvalidRequest: not a list or tuple of :class:`Grasp`, or more than
            :data:`MAX_ALTERNATIVES` of them.
    """
    if not isinstance(alternatives, (list, tuple)):
        raise InvalidRequest(f"alternatives must be a list of grasps, got "
                             f"{type(alternatives).__name__}")
    if len(alternatives) > MAX_ALTERNATIVES:
        raise InvalidRequest(f"alternatives has {len(alternatives)} entries; at most "
                             f"{MAX_ALTERNATIVES} per request (split the set into several "
                             "requests)")
    for i, g in enumerate(alternatives):
        if not isinstance(g, Grasp):
            raise InvalidRequest(f"{entry_name(i + 1)}: expected a grasp, got "
                                 f"{type(g).__name__}")
    return tuple(alternatives)


def entry_name(grasp_index: int) -> str:
    """Name a grasp of a request in messages: ``alternatives[i - 1] (grasp_index i)``."""
    if grasp_index == 0:
        return "the main grasp"
    return f"alternatives[{grasp_index - 1}] (grasp_index {grasp_index})"


def samples_per_grasp(n_grasps: int, n_samples: int, set_samples: int) -> int:
    """Proposals (noise draws) per grasp: ``n_samples`` alone, a share of a set's budget.

    Args:
        n_grasps: grasps in the request (main + alternatives).
        n_samples: proposals of a request with one grasp.
        set_samples: proposals of a request with several grasps, split evenly.

    Returns:
        ``n_samples`` for one grasp, else ``ceil(set_samples / n_grasps)`` capped at
        ``n_samples`` (at least 1).
    """
    if n_grasps <= 1:
        return int(n_samples)
    return max(1, min(int(n_samples), math.ceil(set_samples / n_grasps)))


def expand_targets(grasps: Sequence[Grasp], T_grasps: Sequence[np.ndarray], n_per_grasp: int,
                   rng: np.random.Generator, roll_grid: int | None = None) -> Targets:
    """Expand a request's grasps into targets and proposal rows (module docstring).

    Targets and rows come grasp by grasp, in the order of ``grasps``; vectorized over
    the grasps (a set of 1,000 costs about what one grasp does), except the flips of
    symmetric grasps, each turned into a matrix like a request for it alone.

    Args:
        grasps: the validated grasps, main first.
        T_grasps: their ``(4, 4)`` poses as validated (reused as the unturned targets,
            so that a target is bit for bit the pose of a request for it alone).
        n_per_grasp: noise draws (proposals) per grasp; a symmetric grasp gets this
            many rows per flip.
        rng: draws the free rolls (stratified: one roll per stratum of the circle),
            before any noise of the sampler.
        roll_grid: None for samplers with noise (one random roll per proposal), or
            the number of evenly spaced rolls of a free-roll grasp, each target then
            getting ``n_per_grasp`` rows, a whole grid (the grid sampler: its cells
            must stay fine enough in pan to face the camera; a coarser grid per roll
            missed more grasps than fewer rolls, bench/bench_grasp_sets.py).

    Returns:
        The :class:`Targets`.
    """
    n = int(n_per_grasp)
    free = np.array([bool(g.free_roll) for g in grasps])
    sym = np.array([bool(g.symmetric) for g in grasps]) & ~free
    q0 = np.array([tuple(float(v) for v in g.orientation) for g in grasps]).reshape(-1, 4)
    T0 = np.asarray(T_grasps, dtype=float).reshape(-1, 4, 4)
    n_free = n if roll_grid is None else int(roll_grid)
    n_targets = np.where(free, n_free, np.where(sym, 2, 1))
    per_target = np.where(free & (roll_grid is None), 1, n)  # rows of each target
    tg = np.repeat(np.arange(len(grasps)), n_targets)  # the grasp of each target
    j = np.arange(tg.size) - np.repeat(np.cumsum(n_targets) - n_targets, n_targets)
    fr, flip = free[tg], sym[tg] & (j == 1)
    roll = np.where(flip, math.pi, 0.0)
    if roll_grid is None:
        roll[fr] = 2.0 * math.pi * (j[fr] + rng.random(int(fr.sum()))) / n
    else:
        roll[fr] = 2.0 * math.pi * j[fr] / roll_grid
    quat, T = q0[tg], T0[tg]
    turned = fr & (roll != 0.0)
    quat[turned] = roll_quaternions(q0[tg[turned]], roll[turned])
    T[turned, :3, :3] = quat_to_matrix(quat[turned])
    for t in np.flatnonzero(flip):  # as a request for the flip alone
        quat[t] = flip_quaternion(q0[tg[t]])
        T[t, :3, :3] = quat_to_matrix(quat[t])
    rows = np.repeat(np.arange(tg.size), per_target[tg])
    # the noise draws: one per row, but the two flips of a symmetric grasp share theirs
    row_grasp = tg[rows]
    rows_of = n_targets * per_target
    draws_of = np.where(sym, rows_of // 2, rows_of)
    local = np.arange(rows.size) - np.repeat(np.cumsum(rows_of) - rows_of, rows_of)
    noise = np.repeat(np.cumsum(draws_of) - draws_of, rows_of) + local % draws_of[row_grasp]
    return Targets(T, quat, tg, roll, flip.astype(int), fr, rows, noise, int(draws_of.sum()))
