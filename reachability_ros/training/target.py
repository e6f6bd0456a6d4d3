"""The reverse-KL target of the mixture family, tabulated per grasp (numpy; no torch).

For a grasp, the target over the manifold coordinates is ``log p(pan, lift, branch) =
beta * V`` with ``V`` the quality of the exact stance at those coordinates
(``evaluation.quality.StanceQuality``: the ranking's visibility, manipulability,
limit-margin and linearized-robustness terms) where that stance is feasible (a real
branch, within the joint limits, visible). Because the closed-form solver makes every
coordinate an exact stance, ``V`` is cheap: :func:`target_table` evaluates it on a grid of
the normalized (pan, lift) per branch (``ReverseKLConfig.grid_pan x grid_lift`` nodes over
``pan_range x lift_range``), and the trainer interpolates it bilinearly
(``training.mixture.target_lookup``), which makes the target differentiable in the
samples. Outside the feasible set ``V = -infeasible_gap - infeasible_slope * d`` with
``d`` the distance (normalized units) to the nearest feasible node of the same branch, so
that a sample that lands outside is pulled back; a branch without any feasible node is
flat at ``-gap - slope * diagonal``. ``beta`` is applied by the trainer.

:func:`target_tables` tabulates many grasps and keeps them in a cache file beside the
dataset, keyed by everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import AtomicFile
from .config import ReverseKLConfig


def grid_nodes(cfg: ReverseKLConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return the normalized pan ``(P,)`` and lift ``(L,)`` nodes of the target grid."""
    return (np.linspace(cfg.pan_range[0], cfg.pan_range[1], cfg.grid_pan),
            np.linspace(cfg.lift_range[0], cfg.lift_range[1], cfg.grid_lift))


def _distance_to(mask: np.ndarray, pan: np.ndarray, lift: np.ndarray) -> np.ndarray:
    """Distance ``(P, L)`` of every node to the nearest True node of ``mask`` (normalized units).

    The nearest True node of a False node has a False 4-neighbour, so only those
    (boundary) nodes are searched.
    """
    pad = np.pad(mask, 1, constant_values=False)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    bi, bj = np.nonzero(mask & ~interior)
    P, L = np.meshgrid(pan, lift, indexing="ij")
    d2 = np.full(mask.shape, np.inf)
    bp, bl = pan[bi], lift[bj]
    for s in range(0, len(bp), 256):
        d2 = np.minimum(d2, ((P[..., None] - bp[s:s + 256]) ** 2
                             + (L[..., None] - bl[s:s + 256]) ** 2).min(-1))
    return np.where(mask, 0.0, np.sqrt(d2))


def target_table(manifold, quality, T_world_grasp: np.ndarray, cfg: ReverseKLConfig
                 ) -> np.ndarray:
    """Tabulate one grasp's target values ``V`` (quality units), ``(n_branches, P, L)``.

    Args:
        manifold: the :class:`~reachability_ros.core.manifold.StanceManifold`.
        quality: an :class:`~reachability_ros.evaluation.quality.StanceQuality` of its robot.
        T_world_grasp: ``(4, 4)`` the grasp.
        cfg: the grid and the infeasible-set slope.

    Returns:
        float32 values on the nodes of :func:`grid_nodes` for each branch.
    """
    robot = manifold.robot
    nb = manifold.n_branches
    pan_n, lift_n = grid_nodes(cfg)
    lo, hi = robot.lower[3:5], robot.upper[3:5]
    pan = 0.5 * (pan_n * (hi[0] - lo[0]) + (lo[0] + hi[0]))
    lift = 0.5 * (lift_n * (hi[1] - lo[1]) + (lo[1] + hi[1]))
    B, Pg, Lg = np.meshgrid(np.arange(nb), pan, lift, indexing="ij")
    q, _ = manifold.solve(np.asarray(T_world_grasp, float), Pg.ravel(), Lg.ravel(), B.ravel())
    res = quality.evaluate(q)
    shape = (nb, cfg.grid_pan, cfg.grid_lift)
    feasible = res["feasible"].reshape(shape)
    value = np.where(res["feasible"], res["quality"], 0.0).reshape(shape)
    diag = float(np.hypot(pan_n[-1] - pan_n[0], lift_n[-1] - lift_n[0]))
    out = np.empty(shape, dtype=np.float32)
    for b in range(nb):
        d = _distance_to(feasible[b], pan_n, lift_n) if feasible[b].any() else np.full(
            feasible[b].shape, diag)
        out[b] = np.where(feasible[b], value[b],
                          -cfg.infeasible_gap - cfg.infeasible_slope * d)
    return out


def table_key(T_grasps: np.ndarray, robot, cfg: ReverseKLConfig, proposal_config) -> str:
    """Hash of what the tables depend on: grasps, robot, grid, slope, quality weights."""
    grid = {k: getattr(cfg, k) for k in ("grid_pan", "grid_lift", "pan_range", "lift_range",
                                         "infeasible_gap", "infeasible_slope",
                                         "robustness_samples")}
    h = hashlib.sha256(np.ascontiguousarray(T_grasps, dtype=np.float64).tobytes())
    h.update(json.dumps({"grid": grid, "urdf": robot.urdf_sha256, "robot": robot.config.to_dict(),
                         "proposal": proposal_config.to_dict()}, sort_keys=True,
                        default=list).encode())
    return h.hexdigest()[:16]


def target_tables(T_grasps: np.ndarray, manifold, visibility, cfg: ReverseKLConfig,
                  cache_dir: str | Path | None = None, log: Callable[[str], None] = print,
                  proposal_config=None) -> np.ndarray:
    """Tabulate the targets of many grasps, ``(N, n_branches, P, L)`` float16.

    Args:
        T_grasps: ``(N, 4, 4)`` grasps.
        manifold: the stance manifold of the robot.
        visibility: its :class:`~reachability_ros.core.visibility.Visibility`.
        cfg: the reverse-KL config (grid and slopes).
        cache_dir: folder of the cache file ``targets_<key>.npz`` (read when it exists,
            written otherwise); None = no cache.
        log: progress lines.
        proposal_config: the weights of the quality (default the service's).

    Returns:
        The tables (float16: the values lie within a few units; 1e-3 resolution).
    """
    from ..core.config import ProposalConfig
    from ..evaluation.quality import StanceQuality

    pc = proposal_config or ProposalConfig()
    T_grasps = np.asarray(T_grasps, dtype=float)
    key = table_key(T_grasps, manifold.robot, cfg, pc)
    path = Path(cache_dir) / f"targets_{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        log(f"targets: {len(T_grasps)} tables from {path}")
        return np.load(path)["tables"]
    quality = StanceQuality(manifold.robot, visibility, pc, cfg.robustness_samples)
    out = np.empty((len(T_grasps), manifold.n_branches, cfg.grid_pan, cfg.grid_lift),
                   dtype=np.float16)
    t0 = time.time()
    for i, T in enumerate(T_grasps):
        out[i] = target_table(manifold, quality, T, cfg)
        if (i + 1) % 1000 == 0:
            log(f"targets: {i + 1} / {len(T_grasps)} grasps ({time.time() - t0:.0f} s)")
    log(f"targets: {len(T_grasps)} tables in {time.time() - t0:.1f} s")
    if path is not None:
        with AtomicFile(path) as f, open(f.tmp_path, "wb") as fh:
            np.savez(fh, tables=out)
    return out
