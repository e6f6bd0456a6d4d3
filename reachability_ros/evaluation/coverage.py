"""Coverage metrics of stance samples (seed 000 section 6.4): gaps, KL, modes.

One implementation of each measure, shared by the toy robots (:mod:`.toy_metrics`),
the LeKiwi's exact ground truth (:func:`evaluate_samples`), the trainer's evaluation
and the benchmarks:

* :func:`max_circular_gap`: the largest gap between angles around the circle (seed
  000's ``max_gap``).
* :func:`azimuth_coverage_gap`: the same restricted to a true support (the LeKiwi's
  visible stances cover only an arc of azimuths around a grasp).
* :func:`kl_divergence`: ``KL(sample histogram || reference mass)`` over cells;
  :func:`kl_to_uniform` (angles on equal bins) and :func:`kl_to_ground_truth`
  (manifold cells) are that one divergence.
* :func:`mode_recall`: the fraction of true modes holding a sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.geometry import TWO_PI


# ------------------------------------------------------------------- gaps
def max_circular_gap(angles: np.ndarray) -> np.ndarray:
    """Return the largest gap between consecutive angles around the circle.

    Args:
        angles: ``(..., S)`` angles (rad): ``S`` samples for each leading index
            (e.g. ``(M, S)`` for ``M`` targets, or ``(S,)`` for one).

    Returns:
        ``(...)`` gaps in ``(0, 2 pi]``: ``2 pi`` when all ``S`` angles coincide or
        there are none (a float for 1-D input).
    """
    a = np.sort(np.mod(np.asarray(angles, dtype=float), TWO_PI), axis=-1)
    if a.shape[-1] == 0:
        out = np.full(a.shape[:-1], TWO_PI)
        return float(out) if out.ndim == 0 else out
    gaps = np.diff(a, axis=-1)
    wrap = a[..., :1] + TWO_PI - a[..., -1:]
    out = np.concatenate([gaps, wrap], axis=-1).max(axis=-1)
    return float(out) if out.ndim == 0 else out


def azimuth_coverage_gap(sample_azimuth: np.ndarray, true_azimuth: np.ndarray,
                         bin_rad: float = math.radians(1.0)) -> float:
    """Return the largest arc of the true support's azimuths that no sample covers (rad).

    Seed 000's max gap, restricted to the true support: the azimuths (of base
    positions around the grasp) of the true stances and of the samples are binned
    at ``bin_rad``; the gap is the longest run of consecutive (circular) bins that
    are in the true support and hold no sample. A run ends at a sample or where
    the support ends. With a full circle of support this is the seed's
    ``max_i (theta_{i+1} - theta_i)`` (to one bin); without samples it is the
    longest arc of the support.

    Args:
        sample_azimuth: ``(S,)`` sample azimuths (rad).
        true_azimuth: ``(K,)`` azimuths of the ground-truth stances (rad).
        bin_rad: resolution of the support.

    Returns:
        The gap (rad); 0 when the true support is empty or fully covered.
    """
    nb = max(1, int(round(TWO_PI / bin_rad)))
    w = TWO_PI / nb

    def bins(a):
        return np.floor(np.mod(np.asarray(a, dtype=float), TWO_PI) / w).astype(int) % nb

    gap = np.zeros(nb, dtype=bool)
    gap[bins(true_azimuth)] = True
    gap[bins(sample_azimuth)] = False
    if gap.all():
        return float(TWO_PI)
    if not gap.any():
        return 0.0
    # longest circular run of True: start the walk just after a False bin
    start = int(np.flatnonzero(~gap)[0])
    g = np.roll(gap, -start - 1)
    edges = np.diff(np.concatenate([[0], g.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return float(runs.max() * w)


# --------------------------------------------------------------------- KL
def kl_divergence(sample_cell: np.ndarray, mass: np.ndarray, eps: float = 0.0) -> float:
    """Return ``KL(p_hat || m)`` (nats) of the samples' histogram over cells.

    Args:
        sample_cell: ``(S,)`` integer cell index of each sample, in ``[0, C)``.
        mass: ``(C,)`` reference mass per cell (normalized here).
        eps: weight of the uniform mixed into the reference, so that samples in
            cells of zero mass cost about ``log(C / eps)`` instead of infinity.

    Returns:
        The divergence; nan without samples.
    """
    mass = np.asarray(mass, dtype=float)
    sc = np.asarray(sample_cell, dtype=int).reshape(-1)
    if sc.size == 0:
        return float("nan")
    p = np.bincount(sc, minlength=len(mass)).astype(float)
    p /= p.sum()
    m = mass / max(mass.sum(), 1e-300)
    if eps:
        m = (1.0 - eps) * m + eps / len(m)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / m[nz])))


def angle_bins(angles: np.ndarray, n_bins: int) -> np.ndarray:
    """Return the index ``(...)`` of each angle's bin among ``n_bins`` equal bins of the circle."""
    a = np.mod(np.asarray(angles, dtype=float), TWO_PI)
    return np.minimum((a / TWO_PI * n_bins).astype(int), n_bins - 1)


def kl_to_uniform(angles: np.ndarray, n_bins: int = 36) -> float:
    """Return ``KL(p_hat || Uniform)`` of the histogram of angles on ``n_bins`` bins (nats).

    0 for a flat histogram, ``log(n_bins)`` when every angle falls in one bin.
    With ``n`` uniform draws its expectation is about ``(n_bins - 1) / (2 n)``.
    """
    return kl_divergence(angle_bins(angles, n_bins), np.ones(n_bins))


def kl_to_ground_truth(sample_cell: np.ndarray, cell_mass: np.ndarray,
                       eps: float = 1e-6) -> float:
    """Return KL(sample histogram || true density) over the manifold's cells (nats).

    Seed 000's ``KL(p_hat || Unif)`` with the exact density in place of the
    uniform one; :func:`kl_divergence` with ``eps`` of the uniform mixed in.

    Args:
        sample_cell: ``(S,)`` flat cell indices of the samples (see :func:`sample_cells`).
        cell_mass: ``(C,)`` true probability mass per cell.
        eps: smoothing weight.

    Returns:
        The divergence; nan without samples.
    """
    return kl_divergence(sample_cell, cell_mass, eps)


# ------------------------------------------------------------------ modes
def mode_recall(sample_cell: np.ndarray, cell_mode: np.ndarray, n_modes: int) -> float:
    """Return the fraction of the true modes that hold at least one sample (1 if none)."""
    if n_modes == 0:
        return 1.0
    sc = np.asarray(sample_cell, dtype=int)
    m = cell_mode[sc] if sc.size else np.zeros(0, dtype=int)
    return float(np.unique(m[m >= 0]).size / n_modes)


# ------------------------------------------------- against a ground truth
def sample_cells(gt: dict[str, Any], pan: np.ndarray, lift: np.ndarray,
                 branch: np.ndarray) -> np.ndarray:
    """Return the flat (branch, pan, lift) cell ``(S,)`` of coordinates in ``gt``'s grid."""
    p0, p1 = gt["pan_range"]
    l0, l1 = gt["lift_range"]
    ip = np.clip(np.floor((pan - p0) / (p1 - p0) * gt["n_pan"]), 0, gt["n_pan"] - 1).astype(int)
    il = np.clip(np.floor((lift - l0) / (l1 - l0) * gt["n_lift"]), 0,
                 gt["n_lift"] - 1).astype(int)
    return (np.asarray(branch, dtype=int) * gt["n_pan"] + ip) * gt["n_lift"] + il


def coarsen_cells(gt: dict[str, Any], cell: np.ndarray, bins: int) -> np.ndarray:
    """Map flat (branch, pan, lift) cells of ``gt``'s grid to a ``bins x bins`` grid per branch."""
    cell = np.asarray(cell, dtype=int)
    n_pan, n_lift = gt["n_pan"], gt["n_lift"]
    b, rest = np.divmod(cell, n_pan * n_lift)
    ip, il = np.divmod(rest, n_lift)
    kp, kl = min(bins, n_pan), min(bins, n_lift)
    return (b * kp + ip * kp // n_pan) * kl + il * kl // n_lift


def evaluate_samples(manifold, gt: dict[str, Any], q: np.ndarray,
                     bin_rad: float = math.radians(1.0),
                     kl_bins: int | None = 16) -> dict[str, float]:
    """Return seed 000's metrics of stance samples against a grasp's exact ground truth.

    Args:
        manifold: the :class:`~reachability_ros.core.manifold.StanceManifold` (reads
            the samples' manifold coordinates).
        gt: :func:`~reachability_ros.evaluation.ground_truth.ground_truth` of the grasp.
        q: ``(S, 8)`` samples (pass the ones the caller counts, e.g. valid and visible).
        bin_rad: azimuth resolution of the coverage gap.
        kl_bins: (pan, lift) cells per axis and branch of the KL histogram
            (the ground truth's cells merged into at most this many); None =
            the ground truth's own grid. A plug-in KL is biased upwards by
            about ``(cells - 1) / (2 S)`` for ``S`` samples: keep the cells
            well below the samples.

    Returns:
        ``coverage_gap_rad`` (largest uncovered azimuth arc of the true support),
        ``support_rad`` (the true support's azimuth measure, to one bin), ``kl``
        (sample histogram to the true density over the (branch, pan, lift) cells),
        ``mode_recall`` (fraction of true modes reached), ``n_modes``, ``n_samples``.
    """
    q = np.asarray(q, dtype=float).reshape(-1, 8)
    q = q[np.all(np.isfinite(q), axis=1)]
    g = gt["grasp_xy"]
    az = np.arctan2(q[:, 1] - g[1], q[:, 0] - g[0])
    if len(q):
        pan, lift, br = manifold.coordinates(q, gt["T_world_grasp"])
        cells = sample_cells(gt, pan, lift, br)
    else:
        cells = np.zeros(0, dtype=int)
    if kl_bins is None:
        kl = kl_to_ground_truth(cells, gt["cell_mass"])
    else:
        coarse_mass = np.bincount(coarsen_cells(gt, np.arange(len(gt["cell_mass"])), kl_bins),
                                  weights=gt["cell_mass"])
        kl = kl_to_ground_truth(coarsen_cells(gt, cells, kl_bins), coarse_mass)
    return {
        "coverage_gap_rad": azimuth_coverage_gap(az, gt["azimuth"], bin_rad),
        "support_rad": float(np.unique(np.floor(np.mod(gt["azimuth"], TWO_PI) / bin_rad)).size
                             * bin_rad),
        "kl": kl,
        "mode_recall": mode_recall(cells, gt["cell_mode"], gt["n_modes"]),
        "n_modes": float(gt["n_modes"]),
        "n_samples": float(len(q)),
    }
