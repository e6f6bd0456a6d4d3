"""The exact ground truth of a grasp's stance set (seed 000 section 6.4, on the LeKiwi).

For one grasp the whole-body configurations that put the tool on it form a 2-D
manifold with a few branches (:class:`~reachability_ros.core.manifold.StanceManifold`
solves it in closed form over the coordinates (pan, lift, branch)).
:func:`ground_truth` discretizes the feasible part of it (joint limits, and the
front camera's view when a :class:`~reachability_ros.core.visibility.Visibility`
is given) as a distribution **uniform over the manifold's area**, with its modes
(connected components, :func:`connected_components`); :func:`sample_ground_truth`
draws exact stances from it. The metrics against it are in :mod:`.coverage`.

Why area and not joint space: seed 000 section 6.4 compares samples against the
uniform distribution over the feasible set as a geometric object (the circle of
base positions, ``theta ~ U[0, 2 pi)``, i.e. uniform in arc length), independent
of how it is parametrized. Uniform in (pan, lift) would over-weight the stances
where the base barely moves as pan and lift change (near the elbow's fold) and
depend on the arbitrary choice of coordinates; uniform in the stance (base pose)
area is the LeKiwi counterpart of the seed's arc length.

Only public interfaces of the core are used: the manifold's ``grid``, ``solve``
and ``n_branches``, and the robot's limits and Jacobian.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import InvalidRequest
from ..core.geometry import planar_transform

#: configuration columns of (pan, lift); the roll is column 7
_PAN_LIFT = [3, 4]


def area_element(robot, q: np.ndarray, vertical: bool = False,
                 jacobian: np.ndarray | None = None) -> np.ndarray:
    """Area (volume) element of the stance manifold per unit of its coordinates.

    The stance of a configuration is its base pose ``(x, y, yaw)``; with a branch
    fixed, the stances of one grasp form a surface in stance space, measured with
    the metric ``dx^2 + dy^2 + (R dyaw)^2`` (``R = robot.config.reach_m``). This
    returns ``sqrt(det(G^T G))`` of ``G = d(x, y, R yaw) / d(pan, lift)`` along the
    surface. On it the tool does not move: with ``J`` the whole-body tool Jacobian
    ``(6, 8)``, ``J_c dq_c = -J_p dp`` for the coordinates ``p`` (pan, lift) and the
    other joints ``c``, so ``dq_c / dp = -J_c^+ J_p`` (implicit function theorem).
    For a vertical approach every wrist roll reaches the grasp: the set is 3-D, the
    roll is a coordinate too and this is a volume element (``|det G|``, ``G`` 3 x 3).

    Args:
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel`.
        q: ``(K, 8)`` exact stances of one grasp.
        vertical: the approach is vertical (the roll is a coordinate).
        jacobian: ``(K, 6, 8)`` tool Jacobian of ``q`` if the caller has it.

    Returns:
        ``(K,)`` non-negative elements (m^2 per rad^2, m^3 per rad^3); 0 where the
        other joints cannot be solved for (an exactly singular ``J_c``).
    """
    q = np.asarray(q, dtype=float)
    J = robot.jacobian(q) if jacobian is None else np.asarray(jacobian, dtype=float)
    coords = ([7] + _PAN_LIFT) if vertical else _PAN_LIFT
    others = [c for c in range(q.shape[1]) if c not in coords]
    Jc, Jp = J[:, :, others], J[:, :, coords]
    scale = np.array([1.0, 1.0, robot.config.reach_m])
    out = np.zeros(len(q))
    if vertical:  # J has rank 5 on a vertical fiber: least squares on the normal equations
        A, B = np.swapaxes(Jc, 1, 2) @ Jc, np.swapaxes(Jc, 1, 2) @ Jp
    else:
        A, B = Jc, Jp
    ok = np.isfinite(A).all(axis=(1, 2)) & (np.linalg.det(A) != 0.0)
    if not ok.any():
        return out
    G = -np.linalg.solve(A[ok], B[ok])[:, :3] * scale[None, :, None]
    if vertical:
        out[ok] = np.abs(np.linalg.det(G))
    else:
        out[ok] = np.linalg.norm(np.cross(G[:, :, 0], G[:, :, 1]), axis=1)
    return out


def connected_components(mask: np.ndarray) -> np.ndarray:
    """Label the 4-connected components of each 2-D slice of ``mask (B, P, L)``.

    Union-find over the feasible cells only (hook to the smaller root, then
    pointer jumping), vectorized.

    Returns:
        ``(B, P, L)`` labels ``0 .. n-1`` in order of first cell; -1 where ``mask`` is False.
    """
    B, P, L = mask.shape
    idx = np.full(mask.shape, -1)
    cells = np.flatnonzero(mask.ravel())
    idx.ravel()[cells] = np.arange(cells.size)
    pairs = []
    for a, b in ((idx[:, 1:, :], idx[:, :-1, :]), (idx[:, :, 1:], idx[:, :, :-1])):
        both = (a >= 0) & (b >= 0)
        pairs.append(np.stack([a[both], b[both]], axis=1))
    edges = np.concatenate(pairs)
    parent = np.arange(cells.size)
    while edges.size:
        pa, pb = parent[edges[:, 0]], parent[edges[:, 1]]
        diff = pa != pb
        if not diff.any():
            break
        np.minimum.at(parent, np.maximum(pa, pb)[diff], np.minimum(pa, pb)[diff])
        while True:
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp
    _, lab = np.unique(parent, return_inverse=True)
    out = np.full(B * P * L, -1)
    out[cells] = lab.ravel()
    return out.reshape(B, P, L)


def ground_truth(manifold, T_world_grasp: np.ndarray, visibility=None, n_pan: int = 64,
                 n_lift: int = 64, n_roll: int = 8, min_visibility_margin_m: float = 0.0,
                 min_mode_fraction: float = 0.01) -> dict[str, Any]:
    """Return the exact feasible stance set of a grasp, uniform in the manifold's area.

    The grid of ``manifold.grid`` is filtered by joint limits and, when ``visibility``
    is given, by the front camera's frustum and the robot's self-occlusion
    (``Visibility.check``, margin at least ``min_visibility_margin_m``). Each
    feasible grid point carries the area of its cell on the manifold
    (:func:`area_element` times the cell size); normalized, these weights make the
    set a discretization of the uniform distribution over the manifold's area.

    Modes are the connected components (4-neighbourhood on the (pan, lift) cells)
    of the feasible set, per branch, holding at least ``min_mode_fraction`` of the
    total area. For a vertical approach the cells are the (pan, lift) cells feasible
    at some roll.

    Args:
        manifold: the :class:`~reachability_ros.core.manifold.StanceManifold`.
        T_world_grasp: ``(4, 4)`` the grasp.
        visibility: a :class:`~reachability_ros.core.visibility.Visibility`;
            None = no visibility filter.
        n_pan, n_lift, n_roll: grid sizes (see ``StanceManifold.grid``).
        min_visibility_margin_m: required ``VisibilityResult.margin``.
        min_mode_fraction: smallest area fraction of a mode.

    Returns:
        A dict: ``q (K, 8)`` the feasible stances, ``pan, lift, branch, roll (K,)``,
        ``weight (K,)`` (sum 1), ``area (K,)`` (cell area on the manifold),
        ``azimuth (K,)`` (of the base around the grasp, rad), ``cell (K,)`` (flat
        index into ``n_branches x n_pan x n_lift``), ``cell_mass (n_branches * n_pan
        * n_lift,)``, ``cell_mode`` (mode label per cell, -1 = none), ``n_modes``,
        ``mode_area (n_modes,)``, ``n_pan``, ``n_lift``, ``pan_range``,
        ``lift_range``, ``grasp_xy (2,)``, ``n_grid`` (points solved),
        ``n_reachable`` (within limits), ``vertical``, ``droll`` (roll cell size)
        and ``T_world_grasp``.

    Raises:
        InvalidRequest: ``T_world_grasp`` is not one ``(4, 4)`` pose.
    """
    T = np.asarray(T_world_grasp, dtype=float)
    if T.shape != (4, 4):
        raise InvalidRequest(f"ground_truth takes one grasp (4, 4), got {T.shape}")
    robot = manifold.robot
    nb = manifold.n_branches
    q, valid, c = manifold.grid(T, n_pan, n_lift, n_roll)
    keep = valid.copy()
    n_reach = int(valid.sum())
    if visibility is not None and keep.any():
        idx = np.flatnonzero(keep)
        res = visibility.check(q[idx])
        ok = res.visible & (res.margin >= min_visibility_margin_m)
        keep[idx[~ok]] = False
    idx = np.flatnonzero(keep)
    qk = q[idx]
    cell_size = c["dpan"] * c["dlift"] * (c["droll"] if c["vertical"] else 1.0)
    area = area_element(robot, qk, vertical=c["vertical"]) * cell_size
    area = np.where(np.isfinite(area), area, 0.0)
    total = area.sum()
    weight = area / total if total > 0 else np.full(len(idx), 1.0 / max(1, len(idx)))
    cell = (c["branch"][idx] * n_pan + c["i_pan"][idx]) * n_lift + c["i_lift"][idx]
    n_cells = nb * n_pan * n_lift
    cell_mass = np.bincount(cell, weights=weight, minlength=n_cells)
    feasible = np.bincount(cell, minlength=n_cells) > 0
    labels = connected_components(feasible.reshape(nb, n_pan, n_lift)).ravel()
    n_lab = labels.max() + 1 if labels.size else 0
    lab_mass = np.bincount(labels[labels >= 0], weights=cell_mass[labels >= 0],
                           minlength=n_lab) if n_lab else np.zeros(0)
    big = np.flatnonzero(lab_mass >= min_mode_fraction * lab_mass.sum()) if n_lab else []
    remap = np.full(max(n_lab, 1), -1)
    remap[big] = np.arange(len(big))
    cell_mode = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
    g = T[:2, 3]
    return {
        "q": qk, "pan": c["pan"][idx], "lift": c["lift"][idx],
        "branch": c["branch"][idx], "roll": c["roll"][idx], "weight": weight,
        "area": area, "azimuth": np.arctan2(qk[:, 1] - g[1], qk[:, 0] - g[0]),
        "cell": cell, "cell_mass": cell_mass, "cell_mode": cell_mode,
        "n_modes": int(len(big)), "mode_area": lab_mass[big] if n_lab else np.zeros(0),
        "n_pan": int(n_pan), "n_lift": int(n_lift),
        "pan_range": (float(robot.lower[3]), float(robot.upper[3])),
        "lift_range": (float(robot.lower[4]), float(robot.upper[4])),
        "grasp_xy": g.copy(), "n_grid": int(len(q)), "n_reachable": n_reach,
        "vertical": c["vertical"], "droll": float(c["droll"]), "T_world_grasp": T.copy(),
    }


def sample_ground_truth(manifold, gt: dict[str, Any], n: int, rng: np.random.Generator,
                        quality: np.ndarray | None = None) -> np.ndarray:
    """Draw exact stances from a ground truth, uniform in area (optionally x quality).

    Each draw picks a feasible cell with probability ``weight * quality``
    (normalized), jitters (pan, lift, and the roll of a vertical approach)
    uniformly inside the cell and solves exactly; draws that leave the feasible
    set (cell borders) are redrawn once and otherwise dropped.

    Args:
        manifold: the :class:`~reachability_ros.core.manifold.StanceManifold`.
        gt: a :func:`ground_truth` dict.
        n: number of draws.
        rng: random generator.
        quality: optional ``(K,)`` non-negative factors per ground-truth point.

    Returns:
        ``(n', 8)`` exact stances, ``n' <= n``, all within limits.
    """
    if len(gt["q"]) == 0 or n <= 0:
        return np.zeros((0, 8))
    p = gt["weight"] if quality is None else gt["weight"] * np.asarray(quality, float)
    if p.sum() <= 0:
        return np.zeros((0, 8))
    p = p / p.sum()
    out = []
    need = n
    dp = (gt["pan_range"][1] - gt["pan_range"][0]) / gt["n_pan"]
    dl = (gt["lift_range"][1] - gt["lift_range"][0]) / gt["n_lift"]
    for _ in range(2):
        k = rng.choice(len(p), size=need, p=p)
        pan = gt["pan"][k] + (rng.random(need) - 0.5) * dp
        lift = gt["lift"][k] + (rng.random(need) - 0.5) * dl
        roll = (gt["roll"][k] + (rng.random(need) - 0.5) * gt["droll"]
                if gt["vertical"] else None)
        q, ok = manifold.solve(gt["T_world_grasp"], pan, lift, gt["branch"][k], roll=roll)
        out.append(q[ok])
        need -= int(ok.sum())
        if need <= 0:
            break
    return np.concatenate(out)[:n]


def free_roll_ground_truth(manifold, T_world_grasp: np.ndarray, visibility=None,
                           n_roll: int = 36, n_pan: int = 32, n_lift: int = 32,
                           min_visibility_margin_m: float = 0.0) -> dict[str, Any]:
    """Return the exact feasible stance set of a grasp whose roll about its approach is free.

    The set is 3-D (the roll about the approach axis, the tool's +z, then the 2-D
    closed form at that roll): the union over ``n_roll`` evenly spaced rolls
    ``T_world_grasp Rz(r)`` of :func:`ground_truth`, each point weighted by its cell's
    area on the manifold times the roll step (uniform over the set's volume).

    Args:
        manifold: the :class:`~reachability_ros.core.manifold.StanceManifold`.
        T_world_grasp: ``(4, 4)`` the grasp.
        visibility: a :class:`~reachability_ros.core.visibility.Visibility`; None = no
            visibility filter.
        n_roll: rolls over ``[0, 2 pi)``, 0 (the grasp itself) included.
        n_pan, n_lift: grid sizes of each roll (see :func:`ground_truth`).
        min_visibility_margin_m: required visibility margin.

    Returns:
        A dict: ``q (K, 8)`` the feasible stances, ``roll (K,)`` the roll each reaches
        the grasp at (rad), ``T_target (K, 4, 4)`` that tool pose, ``weight (K,)``
        (sum 1, or empty), ``rolls (n_roll,)``, ``n_per_roll (n_roll,)`` feasible
        points per roll, ``empty`` (no roll has a stance).

    Raises:
        InvalidRequest: ``T_world_grasp`` is not one ``(4, 4)`` pose.
    """
    T = np.asarray(T_world_grasp, dtype=float)
    if T.shape != (4, 4):
        raise InvalidRequest(f"free_roll_ground_truth takes one grasp (4, 4), got {T.shape}")
    rolls = 2.0 * np.pi * np.arange(int(n_roll)) / int(n_roll)
    q, roll, target, mass, counts = [], [], [], [], []
    for r in rolls:
        Tr = T @ planar_transform(0.0, 0.0, r)  # the grasp turned by r about its +z
        gt = ground_truth(manifold, Tr, visibility, n_pan, n_lift,
                          min_visibility_margin_m=min_visibility_margin_m)
        k = len(gt["q"])
        counts.append(k)
        q.append(gt["q"])
        roll.append(np.full(k, r))
        target.append(np.repeat(Tr[None], k, axis=0))
        mass.append(gt["area"])
    area = np.concatenate(mass) if mass else np.zeros(0)
    total = area.sum()
    weight = area / total if total > 0 else np.full(len(area), 1.0 / max(1, len(area)))
    return {"q": np.concatenate(q), "roll": np.concatenate(roll),
            "T_target": np.concatenate(target), "weight": weight, "rolls": rolls,
            "n_per_roll": np.array(counts), "empty": not sum(counts)}
