"""Evaluation of stance samplers on held-out grasps (seed 000, section 6.4).

A sampler here is any callable ``sample(cond (B, dc), z (B, dz)) -> x (B, dx)``
on numpy float32 arrays (a torch model wrapped by :func:`torch_sampler`, an
onnxruntime session, the nearest-neighbour baseline).

LeKiwi metrics (:func:`evaluate_lekiwi`), per model on held-out grasps with
``n_samples`` raw samples each:

* raw-sample FK error: decode the stance features with the grasp
  (:class:`StanceCodec`), run the whole-body model's own FK (independent of the
  sampler), position (mm) and orientation (deg) error: mean, median, p95;
* ``frac_valid`` (joint limits) and ``frac_visible`` (core :class:`Visibility`);
* ``frac_grasps_hit``: grasps with at least one sample within 20 mm / 5 deg
  that is valid and visible;
* coverage: largest azimuth gap (rad) of the base positions around the grasp;
* latent usage: variance of the stance features at a fixed grasp;
* optionally seed 000's coverage, KL and mode recall against the exact ground truth
  (``evaluation.ground_truth``, ``evaluation.coverage``).

Toy v2 metrics (:func:`evaluate_toy`) follow seed 000's table
(``evaluation.toy_metrics``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..core.canonical import StanceCodec
from ..core.geometry import pose_error
from ..evaluation import toy_data, toy_metrics
from ..evaluation.coverage import evaluate_samples, max_circular_gap
from ..evaluation.ground_truth import ground_truth

Sampler = Callable[[np.ndarray, np.ndarray], np.ndarray]


def torch_sampler(model, chunk: int = 65536) -> Sampler:
    """Wrap a torch model's ``sample`` as a numpy sampler (CPU, no grad, chunked)."""
    import torch

    model = model.cpu().eval()

    def sample(cond: np.ndarray, z: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for s in range(0, len(cond), chunk):
                out.append(model.sample(torch.as_tensor(cond[s:s + chunk], dtype=torch.float32),
                                        torch.as_tensor(z[s:s + chunk], dtype=torch.float32)
                                        ).numpy())
        return np.concatenate(out) if out else np.zeros((0, model.dx), np.float32)

    return sample


def _stats(prefix: str, v: np.ndarray) -> dict:
    v = np.asarray(v, dtype=float)
    return {f"{prefix}_mean": float(v.mean()), f"{prefix}_median": float(np.median(v)),
            f"{prefix}_p95": float(np.percentile(v, 95))}


def sample_grasps(sampler: Sampler, cond: np.ndarray, n_samples: int, dz: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Raw samples ``(G, n_samples, dx)`` for conditions ``(G, dc)``."""
    G = len(cond)
    c = np.repeat(np.asarray(cond, np.float32), n_samples, axis=0)
    z = rng.standard_normal((G * n_samples, dz)).astype(np.float32)
    x = sampler(c, z)
    return x.reshape(G, n_samples, -1)


def decode_samples(x: np.ndarray, T_world_grasp: np.ndarray, robot, output: str,
                   manifold=None) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw model outputs into whole-body configurations for their grasps.

    Args:
        x: ``(N, dx)`` raw outputs.
        T_world_grasp: ``(N, 4, 4)`` the grasp of each row.
        robot: the whole-body model.
        output: ``stance_features`` (``StanceCodec``) or ``manifold_coords`` (the
            exact solve of ``manifold`` at the decoded pan, lift and branch).
        manifold: the ``StanceManifold`` (needed for ``manifold_coords``).

    Returns:
        ``q (N, 8)`` (rows without a real solution are zeros) and ``solved (N,)``.
    """
    from ..core.onnx_sampler import decode_manifold_output

    x = np.asarray(x, dtype=float)
    if output == "manifold_coords":
        pan, lift, branch = decode_manifold_output(x, robot.lower[3:5], robot.upper[3:5])
        q, solved = manifold.solve(T_world_grasp, pan, lift, branch)
        solved = solved & np.all(np.isfinite(q), axis=1)
        return np.where(np.isfinite(q), q, 0.0), solved
    codec = StanceCodec(robot.config.reach_m, robot.lower[3:], robot.upper[3:])
    return codec.decode(x, T_world_grasp), np.ones(len(x), bool)


def evaluate_lekiwi(sampler: Sampler, cond: np.ndarray, T_grasp: np.ndarray, robot,
                    n_samples: int = 256, dz: int = 9, seed: int = 0,
                    visibility=None, output: str = "stance_features",
                    manifold=None, n_ground_truth: int = 0, progress: bool = False) -> dict:
    """LeKiwi metrics of a sampler on held-out grasps.

    Args:
        sampler: numpy sampler ``(cond, z) -> x``.
        cond: ``(G, 7)`` raw condition features of the grasps.
        T_grasp: ``(G, 4, 4)`` grasp poses (world).
        robot: :class:`WholeBodyModel`.
        n_samples: raw samples per grasp.
        dz: latent dimension of the sampler.
        seed: noise seed.
        visibility: a core ``Visibility`` (built from ``robot`` when None).
        output: ``stance_features`` or ``manifold_coords``.
        manifold: a ``StanceManifold`` (needed for ``manifold_coords`` and the
            ground-truth comparison).
        n_ground_truth: compare the valid and visible samples within 20 mm / 5 deg
            of the first that many grasps with the exact ground truth (``evaluation``)
            (``gt_coverage_gap`` (rad), ``gt_kl``, ``gt_mode_recall``: seed 000's
            coverage, KL and mode metrics against the true feasible set).
        progress: show a progress bar (tqdm) over the grasps.

    Returns:
        Flat dict of metrics (floats).
    """
    from ..core.visibility import Visibility

    vis = visibility or Visibility(robot)
    rng = np.random.default_rng(seed)
    G = len(cond)
    x = sample_grasps(sampler, cond, n_samples, dz, rng)
    j, Tf = robot.frame_placement(robot.config.tool_frame)
    parts: dict[str, list] = {k: [] for k in ("dp", "dr", "valid", "visible", "solved", "az")}
    step = max(1, 65536 // n_samples)
    gt_rows: list[dict] = []
    if (n_ground_truth or output == "manifold_coords") and manifold is None:
        from ..core.manifold import StanceManifold
        manifold = StanceManifold(robot)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=G, unit="grasp", desc="evaluate", mininterval=1.0)
    for g0 in range(0, G, step):
        g1 = min(G, g0 + step)
        if bar is not None:
            bar.update(g1 - g0)
        T = np.repeat(np.asarray(T_grasp[g0:g1], float), n_samples, axis=0)
        flat = x[g0:g1].reshape((g1 - g0) * n_samples, -1)
        q, solved = decode_samples(flat, T, robot, output, manifold)
        oMi = robot.joint_transforms(q)
        dp, dr = pose_error(oMi[:, j] @ Tf, T)
        parts["dp"].append(dp * 1e3)
        parts["dr"].append(np.degrees(dr))
        parts["solved"].append(solved)
        parts["valid"].append(robot.within_limits(q) & solved)
        parts["visible"].append(vis.check(q).visible & solved)
        parts["az"].append(np.arctan2(q[:, 1] - T[:, 1, 3], q[:, 0] - T[:, 0, 3]))
        # ground truth: count the samples that are stances of this grasp (<= 20 mm / 5 deg)
        keep = (parts["valid"][-1] & parts["visible"][-1] & (parts["dp"][-1] <= 20.0)
                & (parts["dr"][-1] <= 5.0))
        for g in range(g0, min(g1, n_ground_truth)):
            rows = slice((g - g0) * n_samples, (g - g0 + 1) * n_samples)
            gt_rows.append(_ground_truth_metrics(manifold, vis, T_grasp[g], q[rows][keep[rows]]))
    if bar is not None:
        bar.close()
    dp_mm, dr_deg, solved, valid, visible, az = (
        np.concatenate(parts[k]) for k in ("dp", "dr", "solved", "valid", "visible", "az"))
    good = valid & visible & (dp_mm <= 20.0) & (dr_deg <= 5.0)
    az = az.reshape(G, n_samples)
    ok = (valid & visible).reshape(G, n_samples)
    gaps = np.array([max_circular_gap(az[g][ok[g]]) for g in range(G)])
    gaps_all = max_circular_gap(az)
    out = {"n_grasps": float(G), "n_samples": float(n_samples)}
    out.update(_stats("pos_err_mm", dp_mm[solved] if solved.any() else dp_mm))
    out.update(_stats("rot_err_deg", dr_deg[solved] if solved.any() else dr_deg))
    out["frac_solved"] = float(solved.mean())
    out["frac_valid"] = float(valid.mean())
    out["frac_visible"] = float(visible.mean())
    out["frac_valid_visible"] = float((valid & visible).mean())
    out["frac_good_20mm_5deg"] = float(good.mean())
    out["frac_grasps_hit"] = float(good.reshape(G, n_samples).any(1).mean())
    out["max_gap_mean"] = float(gaps.mean())
    out["max_gap_p95"] = float(np.percentile(gaps, 95))
    out["max_gap_all_mean"] = float(gaps_all.mean())
    out["var_x_fixed_grasp"] = float(x.var(axis=1).mean())
    if gt_rows:
        for k in ("coverage_gap_rad", "kl", "mode_recall", "support_rad"):
            v = np.array([r[k] for r in gt_rows], dtype=float)
            v = v[np.isfinite(v)]
            out[f"gt_{k}_mean"] = float(v.mean()) if len(v) else float("nan")
        out["gt_n_grasps"] = float(len(gt_rows))
    return out


def _ground_truth_metrics(manifold, vis, T: np.ndarray, q: np.ndarray) -> dict:
    """``evaluation.coverage.evaluate_samples`` against the visible exact ground truth."""
    gt = ground_truth(manifold, np.asarray(T, float), visibility=vis)
    return evaluate_samples(manifold, gt, q)


def evaluate_toy(sampler: Sampler, toy, dc: int, n_targets: int = 1000, n_samples: int = 100,
                 dz: int = 8, seed: int = 0) -> dict:
    """Seed 000's table for toy v2.1 (``evaluation.toy_metrics``, keys without prefixes).

    The v2.1 features are relative to the target, so the condition is the zero
    vector; each test target ``H ~ U(workspace)`` is decoded with ``toy.decode``.

    Args:
        sampler: numpy sampler ``(cond (B, dc), z (B, dz)) -> Q_feat (B, 8)``.
        toy: ``evaluation.toys.TwoLinkToy``.
        dc: condition width (zeros).
        n_targets: test targets.
        n_samples: draws per target.
        dz: sampler latent dimension.
        seed: seed of targets and noise.

    Returns:
        ``hand_err_mean/median/p95`` (m), ``max_gap_mean/p95`` (rad),
        ``kl_to_uniform``, ``var_Q_fixed_H`` and the extras of ``toy_metrics``.
    """
    rng = np.random.default_rng(seed)
    h = toy_data.sample_targets(n_targets, rng)

    def features(n: int) -> np.ndarray:
        z = rng.standard_normal((n, dz)).astype(np.float32)
        return np.asarray(sampler(np.zeros((n, dc), np.float32), z), dtype=float)

    m = toy_metrics.toy_metrics(toy_data.feature_sampler(toy, features), toy, h, n_samples)
    out = {_toy_key(k): float(v) for k, v in m.items()}
    out["reach_m"] = float(toy.reach_m)
    return out


def toy_nn_baseline(toy, n_train: int = 20000, n_targets: int = 1000, n_samples: int = 100,
                    seed: int = 0) -> dict:
    """Seed 000's NN lookup row on toy v2 (1-NN over world targets, as in its table)."""
    rng = np.random.default_rng(seed + 1000)
    q_tr, h_tr = toy_data.toy_v2_samples(n_train, rng, toy)
    h = toy_data.sample_targets(n_targets, np.random.default_rng(seed))
    m = toy_metrics.toy_metrics(toy_data.NearestNeighbourLookup(h_tr, q_tr), toy, h, n_samples)
    out = {_toy_key(k): float(v) for k, v in m.items()}
    out["reach_m"] = float(toy.reach_m)
    return out


def _toy_key(k: str) -> str:
    head, tail = k.split("/", 1)
    return f"{head}_{tail}" if head == "hand_err" else tail


TOY_KEYS = ["hand_err_mean", "hand_err_median", "hand_err_p95", "max_gap_mean", "max_gap_p95",
            "kl_to_uniform", "var_Q_fixed_H"]


def format_table(rows: dict[str, dict], keys: list[str] | None = None) -> str:
    """Markdown table: one row per model, one column per metric."""
    keys = keys or sorted({k for r in rows.values() for k in r})
    lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys)
            + " |")
    return "\n".join(lines)
