"""Training data for the LeKiwi stance samplers: forward sampling, quality bias, strata, shards.

How a pair (grasp, stance) is made (seed 000 section 5.1, generalized to 8 DoF):

1. Sample the five arm joints uniformly inside a *proposal box* (the joint
   limits, narrowed to the range a pilot run found visible configurations in,
   plus a margin: shoulder pan only ever shows the tool to the front camera
   within about +-0.57 rad of its +-1.92 rad range, so the box saves two thirds
   of the work without changing the distribution it keeps).
2. Forward kinematics with the base at the origin gives the tool pose in the
   base frame. A cheap frustum test, then the foundation's
   :class:`~reachability_ros.core.visibility.Visibility` check (frustum and
   self-occlusion, margins) keeps the configurations whose front camera sees
   the tool frame unoccluded.
3. Quality-biased acceptance (seed 000 section 5.1(6)): a score
   ``S = min(1, w / w_ref) * min(1, m / m_ref)`` in [0, 1] from the arm's
   manipulability ``w`` and the joint-limit margin ``m`` (both from
   :class:`~reachability_ros.core.robot.WholeBodyModel`). The rule is a config
   option: ``none`` (keep all), ``hard`` (keep ``S >= min_score``), ``soft``
   (keep with probability ``S / S_max``, ``S_max = 1``) or ``weight`` (keep all,
   store ``S`` as the sample weight).
4. Density on the stance manifold (``density`` option). For one grasp the
   feasible stances form a 2-D manifold (issue 7, ``core/manifold.py``).
   Forward sampling, uniform in joint space, puts on it a density
   proportional to ``1 / |det J_6|`` per ``dpan dlift`` (change of variables,
   :meth:`ForwardSampler.density_ratio`), which over-weights stances where the
   arm is badly conditioned. ``area`` (default) accepts each stance with
   probability ``w / w_ref``, ``w = a(q) |det J_6(q)|`` (``a``: the manifold's
   area element), so the kept stances are **uniform in the manifold's area**
   (in base-pose space, metric ``dx^2 + dy^2 + (R dyaw)^2``), the same measure
   as the exact ground truth of ``core.manifold`` that evaluation compares
   with, times the quality rule. Uniform in area rather than in joint space or
   in (pan, lift): a stance's worth is where the base stands, and neither
   coordinate system should decide how often a base pose is shown. Checked
   (``test/test_data.py``): for 120 grasps, the rank of the data stance's
   ``w`` among 200 exact ground-truth draws of the same grasp is uniform for
   ``area`` (KS distance 0.05-0.12 over three seeds, 1 % critical value 0.149)
   and not for ``forward`` (0.21-0.26). ``area_weight`` keeps every stance and stores
   ``w / w_ref`` in the weight instead; ``forward`` keeps the joint-space
   density.
5. A random base pose (uniform in a square, any yaw) places the pair in the
   world; the grasp is the tool pose ``T_world_grasp``. Every feature is
   invariant to that planar motion (core.canonical), so it only exercises the
   featurization. The pair is stored as the condition ``c`` (7), the stance
   features ``x`` (9), the raw ``q`` (8) and ``T_grasp``.
6. Stratification over the condition space (seed 004 section 7.3): each pair
   falls in a bin of (grasp height, approach elevation). A shard draws a pool
   of ``oversample * shard_size`` accepted pairs and keeps ``shard_size`` of
   them by *water-filling*: every bin keeps ``min(count, L)`` pairs, with the
   level ``L`` set so the total is the shard size. Common bins are thinned, rare
   bins keep everything, so counts are as balanced as the candidate budget
   allows (``oversample`` trades balance for speed).

Training distribution versus task distribution. A LeKiwi user asks for
table-top and floor pick-ups with top-down, side and oblique approaches. The
set of grasps the robot can both reach and watch with its low front camera is
much smaller than that: measured on the packaged description, visible tool
heights run from about -0.03 m to 0.33 m (the arm reaches 0.6 m, but not in
view) and approach elevations (angle of the approach axis below the horizon,
90 deg = top-down) from about -27 deg to 90 deg. Forward sampling covers
exactly that reachable-visible set, each grasp with its full set of stances;
the stratification flattens its natural marginal so floor pick-ups, low-table
grasps and the rare top-down and upward approaches get their share. Measured
with the defaults (200,000 pairs, shares natural -> stratified): height below
0 m 1.5 % -> 6.0 %, 0-5 cm 12.0 % -> 13.4 %, 5-25 cm 78.7 % -> 66.1 %, 25-30 cm
7.0 % -> 11.6 %, above 30 cm 0.7 % -> 2.9 %; elevation below -15 deg 2.3 % ->
6.3 %, -15-0 deg 11.0 % -> 11.7 %, 0-45 deg 63.6 % -> 47.6 %, 45-75 deg 20.8 % ->
26.1 %, top-down 75-90 deg 2.3 % -> 8.2 %. Every run prints these histograms.
Grasps slightly below the floor (down to -3 cm, the tool frame pressed into
it) are kept: the service accepts requests down to ``min_height_m = -0.05`` and
no floor contact is modelled; no arm joint ever goes below the floor in the
visible set.
Within a bin, stratification does not change ``p(stance | grasp)``: only the
quality rule does, on purpose. Grasps outside the set (a 75 cm table top, an
approach from below the horizon steeper than about 30 deg) have no feasible
visible stance, and the samplers are not trained on them; the service must
report them as unreachable (see :func:`sample_unreachable_grasps`). Run
``python -m reachability_ros.training.data --config config/data_lekiwi.yaml``
to print the measured histograms of grasp height and approach elevation.

Everything is deterministic given the seed: shard ``k`` of split ``s`` draws
from ``SeedSequence([seed, s, k])``, independent of the worker count, so a
rerun regenerates exactly the shards a crash lost and keeps the others
(checked by SHA-256).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from reachability_ros.core.canonical import (FEATURIZATION_VERSION, StanceCodec,
                                             condition_features)
from reachability_ros.core.config import RobotConfig
from reachability_ros.core.errors import ConfigError, DescriptionError
from reachability_ros.core.robot import WholeBodyModel
from reachability_ros.core.visibility import Visibility

DATASET_FORMAT = "reachability_ros.dataset/1"
SPLITS = {"train": 0, "heldout": 1}
_PILOT_STREAM = 2

DEFAULT_CONFIG: dict[str, Any] = {
    "robot": {},
    "seed": 0,
    "train_pairs": 2_000_000,
    "heldout_pairs": 20_000,
    "shard_size": 100_000,
    "batch_size": 20_000,
    "workers": 2,
    "oversample": 4.0,
    "max_batches_per_shard": 2_000,
    "base_extent_m": 2.0,
    "pilot_candidates": 200_000,
    "box_margin_rad": 0.15,
    "min_visibility_margin_m": 0.0,
    "manifold": "auto",
    "density": "area",
    "density_ref_percentile": 99.0,
    "quality": {
        "rule": "soft",
        "manipulability_ref": 0.006,
        "limit_margin_ref": 0.03,
        "min_score": 0.1,
    },
    "strata": {
        "height_edges_m": [-0.05, 0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35],
        "elevation_edges_deg": [-90.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0],
    },
}
QUALITY_RULES = ("none", "hard", "soft", "weight")
DENSITIES = ("forward", "area", "area_weight")


# --------------------------------------------------------------------------- config
def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], path: str) -> dict:
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"unknown data option {path}{key!r}; known: {sorted(defaults)}")
        if isinstance(defaults[key], dict) and key != "robot":
            if not isinstance(value, Mapping):
                raise ConfigError(f"data option {path}{key} must be a mapping, got {value!r}")
            out[key] = _merge(defaults[key], value, f"{path}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def data_config(config: Mapping[str, Any] | None = None) -> dict:
    """Return the full, validated data config: defaults overlaid with ``config``.

    Args:
        config: options (see ``config/data_lekiwi.yaml``); a mapping with a
            top-level ``data`` key is unwrapped.

    Returns:
        A new nested dict with every option.

    Raises:
        ConfigError: an unknown key or a value out of range (named in the message).
    """
    config = dict(config or {})
    if set(config) == {"data"}:
        config = dict(config["data"] or {})
    cfg = _merge(DEFAULT_CONFIG, config, "")
    for key in ("train_pairs", "heldout_pairs"):
        if not isinstance(cfg[key], int) or cfg[key] < 0:
            raise ConfigError(f"data.{key} must be an integer >= 0, got {cfg[key]!r}")
    for key in ("shard_size", "batch_size", "workers", "max_batches_per_shard",
                "pilot_candidates"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"data.{key} must be an integer >= 1, got {cfg[key]!r}")
    if not float(cfg["oversample"]) >= 1.0:
        raise ConfigError(f"data.oversample must be >= 1, got {cfg['oversample']!r}")
    q = cfg["quality"]
    if q["rule"] not in QUALITY_RULES:
        raise ConfigError(f"data.quality.rule {q['rule']!r} is not one of {QUALITY_RULES}")
    for key in ("manipulability_ref", "limit_margin_ref"):
        if not float(q[key]) > 0.0:
            raise ConfigError(f"data.quality.{key} must be > 0, got {q[key]!r}")
    if cfg["density"] not in DENSITIES:
        raise ConfigError(f"data.density {cfg['density']!r} is not one of {DENSITIES}")
    if not 0.0 < float(cfg["density_ref_percentile"]) <= 100.0:
        raise ConfigError(f"data.density_ref_percentile must be in (0, 100], got "
                          f"{cfg['density_ref_percentile']!r}")
    if cfg["manifold"] not in ("auto", "on", "off"):
        raise ConfigError(f"data.manifold must be 'auto', 'on' or 'off', got {cfg['manifold']!r}")
    for key in ("height_edges_m", "elevation_edges_deg"):
        e = np.asarray(cfg["strata"][key], dtype=float)
        if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
            raise ConfigError(f"data.strata.{key} must be >= 2 increasing edges, got {e.tolist()}")
    if not isinstance(cfg["robot"], Mapping):
        raise ConfigError(f"data.robot must be a mapping of RobotConfig fields, got "
                          f"{cfg['robot']!r}")
    RobotConfig.from_dict(cfg["robot"])  # validates
    return cfg


def load_data_config(path: str | Path) -> dict:
    """Read a data config YAML file (``config/data_lekiwi.yaml``) into a validated dict."""
    from reachability_ros.config_io import load_yaml
    return data_config(load_yaml(path))


# --------------------------------------------------------------------- descriptors
def grasp_descriptors(T_world_grasp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height (m) and approach elevation (deg) of grasps.

    Args:
        T_world_grasp: ``(N, 4, 4)`` grasp poses; the tool's +z is the approach axis.

    Returns:
        ``height_m (N,)`` and ``elevation_deg (N,)``: the angle of the approach
        axis below the horizon (90 = top-down, 0 = side, < 0 = from below).
    """
    T = np.asarray(T_world_grasp, dtype=float)
    a_z = np.clip(T[..., 2, 2], -1.0, 1.0)
    return T[..., 2, 3].copy(), np.degrees(np.arcsin(-a_z))


def strata_index(height_m: np.ndarray, elevation_deg: np.ndarray,
                 strata: Mapping[str, Any]) -> np.ndarray:
    """Flat bin index ``(N,)`` of (height, elevation); values outside go to the edge bins."""
    he = np.asarray(strata["height_edges_m"], dtype=float)
    ee = np.asarray(strata["elevation_edges_deg"], dtype=float)
    ih = np.clip(np.searchsorted(he, height_m, side="right") - 1, 0, len(he) - 2)
    ie = np.clip(np.searchsorted(ee, elevation_deg, side="right") - 1, 0, len(ee) - 2)
    return ih * (len(ee) - 1) + ie


def water_fill(bins: np.ndarray, n: int, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Select ``n`` indices as evenly over bins as possible (each bin ``min(count, L)``).

    Args:
        bins: ``(M,)`` bin index of each candidate.
        n: how many to keep (all if ``n >= M``).
        n_bins: number of bins.
        rng: shuffles which candidates of a thinned bin are kept.

    Returns:
        ``(min(n, M),)`` sorted indices into ``bins``.
    """
    m = len(bins)
    if n >= m:
        return np.arange(m)
    perm = rng.permutation(m)
    b = bins[perm]
    order = np.argsort(b, kind="stable")
    sorted_b = b[order]
    starts = np.searchsorted(sorted_b, np.arange(n_bins))
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m) - starts[sorted_b]
    # the n candidates of smallest rank within their bin (ties broken by the shuffle)
    keep = np.argsort(rank, kind="stable")[:n]
    return np.sort(perm[keep])


# -------------------------------------------------------------------- the sampler
class ForwardSampler:
    """Forward sampling of visible, quality-accepted whole-body configurations.

    Args:
        robot: the whole-body model.
        config: a validated data config (:func:`data_config`).
        box: ``(2, n_arm)`` proposal box of the arm joints; default the limits.
        visibility: a :class:`Visibility` of ``robot``; built when omitted.
        manifold: the exact stance manifold (``core.manifold.StanceManifold``);
            needed for the ``area`` densities, ignored for ``forward``.
        density_ref: the reference ``w_ref`` of the area acceptance (see
            :meth:`density_ratio`); ``None`` = do not apply the density option.
    """

    def __init__(self, robot: WholeBodyModel, config: Mapping[str, Any],
                 box: np.ndarray | None = None, visibility: Visibility | None = None,
                 manifold=None, density_ref: float | None = None) -> None:
        self.robot = robot
        self.config = config
        self.vis = visibility or Visibility(robot)
        self.manifold = manifold
        self.density_ref = density_ref
        lo, hi = robot.lower[3:], robot.upper[3:]
        self.box = np.array([lo, hi]) if box is None else np.asarray(box, dtype=float)
        self._tool_joint, self._T_joint_tool = robot.frame_placement(robot.config.tool_frame)
        self.codec = StanceCodec(robot.config.reach_m, lo, hi)

    def _in_frustum(self, p_base: np.ndarray) -> np.ndarray:
        v = self.vis
        p = (p_base - v.p_base_cam) @ v.R_cam_base.T
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        left, right, up, down = v.half_angles
        ah, av = np.arctan2(x, z), np.arctan2(y, z)
        return ((ah >= -left) & (ah <= right) & (av >= -up) & (av <= down)
                & (z >= v.camera.near_m) & (z <= v.camera.far_m))

    def quality_score(self, q: np.ndarray, oMi: np.ndarray | None = None) -> dict:
        """Manipulability, limit margin and the score ``S`` in [0, 1] of configurations."""
        qc = self.config["quality"]
        w = self.robot.manipulability(q, oMi=oMi)
        m = self.robot.limit_margin(q)
        s = (np.clip(w / float(qc["manipulability_ref"]), 0.0, 1.0)
             * np.clip(m / float(qc["limit_margin_ref"]), 0.0, 1.0))
        return {"manipulability": w, "limit_margin": m, "score": s}

    def density_ratio(self, q: np.ndarray, T_world_grasp: np.ndarray,
                      oMi: np.ndarray | None = None) -> np.ndarray:
        """Ratio ``w (N,)`` of the area-uniform to the forward-sampled density on the fiber.

        Forward sampling draws ``q`` uniformly (arm in a box, base uniform). For
        a fixed grasp, change variables ``q -> (T, pan, lift)`` on a branch: the
        density of ``(pan, lift)`` given ``T`` is proportional to
        ``1 / |det J_6(q)|``, where ``J_6`` is the 6 x 6 minor of the
        whole-body tool Jacobian without the pan and lift columns (world-aligned
        twist coordinates carry the Haar measure of SE(3)). The ground truth of
        ``core.manifold`` is uniform in the manifold's area, whose density per
        ``dpan dlift`` is the area element ``a(q)``. Hence
        ``w = a(q) |det J_6(q)|``; both factors are bounded, so ``w`` is too.
        """
        J = self.robot.jacobian(q, oMi=oMi)
        minor = J[:, :, [0, 1, 2, 5, 6, 7]]
        area = self.manifold.area_element(q, T_world_grasp)
        return area * np.abs(np.linalg.det(minor))

    def draw(self, n: int, rng: np.random.Generator, visible: bool = True,
             quality: bool = True) -> dict[str, np.ndarray]:
        """Draw ``n`` candidates; return the accepted ones.

        Args:
            n: candidates to draw (arm configurations).
            rng: random generator (the only source of randomness).
            visible: keep only configurations whose front camera sees the tool.
            quality: apply the configured quality rule.

        Returns:
            Mapping with ``q (K, nq)``, ``T_grasp (K, 4, 4)``, ``weight (K,)``,
            ``manipulability``, ``limit_margin``, ``visibility_margin`` ``(K,)``.
        """
        robot, cfg = self.robot, self.config
        n_arm = robot.nq - 3
        q0 = np.zeros((n, robot.nq))
        q0[:, 3:] = rng.uniform(self.box[0], self.box[1], size=(n, n_arm))
        oMi = robot.joint_transforms(q0)
        T_base_tool = oMi[:, self._tool_joint] @ self._T_joint_tool
        keep = np.arange(n)
        vis_margin = np.full(n, np.inf)
        if visible:
            keep = keep[self._in_frustum(T_base_tool[:, :3, 3])]
            res = self.vis.check(q0[keep], oMi_base=oMi[keep])
            ok = res.visible & (res.margin >= float(cfg["min_visibility_margin_m"]))
            vis_margin[keep] = res.margin
            keep = keep[ok]
        # the rest of the randomness, drawn for the survivors only (cheaper, same law)
        u_soft = np.zeros(n)
        u_density = np.zeros(n)
        u_soft[keep], u_density[keep] = rng.uniform(size=(2, len(keep)))
        qual = self.quality_score(q0[keep], oMi=oMi[keep])
        weight = np.ones(len(keep))
        if quality:
            rule, s = cfg["quality"]["rule"], qual["score"]
            if rule == "hard":
                ok = s >= float(cfg["quality"]["min_score"])
            elif rule == "soft":
                ok = u_soft[keep] < s
            else:
                ok = np.ones(len(keep), dtype=bool)
                if rule == "weight":
                    weight = s.copy()
            keep, weight = keep[ok], weight[ok]
            qual = {k: v[ok] for k, v in qual.items()}
        density = np.ones(len(keep))
        mode = cfg["density"]
        if mode != "forward" and self.manifold is not None and self.density_ref is not None:
            density = self.density_ratio(q0[keep], T_base_tool[keep], oMi=oMi[keep])
            ratio = density / self.density_ref
            if mode == "area":
                ok = u_density[keep] < ratio
            else:
                ok = np.ones(len(keep), dtype=bool)
                weight = weight * ratio
            keep, weight, density = keep[ok], weight[ok], density[ok]
            qual = {k: v[ok] for k, v in qual.items()}
        q = q0[keep]
        q[:, :3] = rng.uniform(-1.0, 1.0, size=(len(keep), 3)) * np.array(
            [cfg["base_extent_m"], cfg["base_extent_m"], np.pi])
        c, s_ = np.cos(q[:, 2]), np.sin(q[:, 2])
        T_world_base = np.zeros((len(keep), 4, 4))
        T_world_base[:, 0, 0], T_world_base[:, 0, 1] = c, -s_
        T_world_base[:, 1, 0], T_world_base[:, 1, 1] = s_, c
        T_world_base[:, 2, 2] = T_world_base[:, 3, 3] = 1.0
        T_world_base[:, 0, 3], T_world_base[:, 1, 3] = q[:, 0], q[:, 1]
        return {"q": q, "T_grasp": T_world_base @ T_base_tool[keep], "weight": weight,
                "manipulability": qual["manipulability"], "limit_margin": qual["limit_margin"],
                "visibility_margin": vis_margin[keep], "density_ratio": density}


def pilot_box(robot: WholeBodyModel, config: Mapping[str, Any],
              rng: np.random.Generator, manifold=None) -> tuple[np.ndarray, dict]:
    """Find the proposal box (arm-joint range of visible configurations, plus a margin).

    With a manifold and an ``area`` density, also the reference ``w_ref`` of the
    area acceptance: the ``density_ref_percentile`` of :meth:`ForwardSampler.density_ratio`
    over the pilot's visible configurations (ratios above it are accepted
    with probability 1, a bias confined to that top percentile).

    Returns:
        ``box (2, n_arm)`` and pilot statistics (candidates, visible, ``density_ref``).
    """
    sampler = ForwardSampler(robot, config)
    n, bs = int(config["pilot_candidates"]), int(config["batch_size"])
    qs, Ts = [], []
    for start in range(0, n, bs):
        d = sampler.draw(min(bs, n - start), rng, quality=False)
        qs.append(d["q"])
        Ts.append(d["T_grasp"])
    q = np.concatenate(qs)
    lo, hi = robot.lower[3:], robot.upper[3:]
    if len(q) == 0:
        return np.array([lo, hi]), {"candidates": n, "visible": 0, "density_ref": None}
    margin = float(config["box_margin_rad"])
    box = np.array([np.maximum(q[:, 3:].min(0) - margin, lo),
                    np.minimum(q[:, 3:].max(0) + margin, hi)])
    ref = None
    if manifold is not None and config["density"] != "forward":
        sampler.manifold = manifold
        w = sampler.density_ratio(q, np.concatenate(Ts))
        ref = float(np.percentile(w, float(config["density_ref_percentile"])))
    return box, {"candidates": n, "visible": int(len(q)), "density_ref": ref,
                 "volume_fraction": float(np.prod((box[1] - box[0]) / (hi - lo)))}


# ------------------------------------------------------------------- manifold (y)
def _manifold_solver(robot: WholeBodyModel, mode: str):
    """The exact stance manifold of ``robot`` when available (``core.manifold``), else None."""
    if mode == "off":
        return None
    try:
        from reachability_ros.core.manifold import StanceManifold
        return StanceManifold(robot)
    except (ImportError, DescriptionError) as exc:  # not there, or not this structure
        if mode == "on":
            raise ConfigError(f"data.manifold = 'on' but the exact manifold solver is not "
                              f"usable for this robot: {exc}") from exc
        return None


def manifold_targets(manifold, q: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     T_world_grasp: np.ndarray | None = None) -> np.ndarray:
    """Manifold coordinates ``y (N, 2 + nb)``: pan, lift in [-1, 1], then +-1 per branch.

    Args:
        manifold: the exact solver (``coordinates(q, T) -> (pan, lift, branch)``).
        q: ``(N, 8)`` configurations.
        lower, upper: ``(2,)`` limits of (pan, lift).
        T_world_grasp: ``(N, 4, 4)`` their grasps; default their forward kinematics.

    Returns:
        ``(N, 2 + n_branches)`` float64; decoded by
        ``core.onnx_sampler.decode_manifold_output``.
    """
    pan, lift, branch = manifold.coordinates(q, T_world_grasp)
    nb = int(manifold.n_branches)
    y = np.full((len(q), 2 + nb), -1.0)
    y[:, 0] = (2.0 * np.asarray(pan) - (lower[0] + upper[0])) / (upper[0] - lower[0])
    y[:, 1] = (2.0 * np.asarray(lift) - (lower[1] + upper[1])) / (upper[1] - lower[1])
    y[np.arange(len(q)), 2 + np.asarray(branch, dtype=int)] = 1.0
    return y


# ------------------------------------------------------------------------- shards
_WORKER: dict[str, Any] = {}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(config: dict, box: list, density_ref: float | None) -> None:
    robot = WholeBodyModel(RobotConfig.from_dict(config["robot"]))
    manifold = _manifold_solver(robot, config["manifold"])
    _WORKER["robot"] = robot
    _WORKER["sampler"] = ForwardSampler(robot, config, box=np.asarray(box), manifold=manifold,
                                        density_ref=density_ref)
    _WORKER["manifold"] = manifold
    _WORKER["config"] = config


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _make_shard(split: str, index: int, size: int, out_path: str) -> dict:
    """Generate one shard (in a worker), write it atomically, return its manifest entry."""
    cfg, sampler, robot = _WORKER["config"], _WORKER["sampler"], _WORKER["robot"]
    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg["seed"]), SPLITS[split], index]))
    strata = cfg["strata"]
    n_bins = (len(strata["height_edges_m"]) - 1) * (len(strata["elevation_edges_deg"]) - 1)
    want = int(np.ceil(float(cfg["oversample"]) * size))
    parts, got, batches = [], 0, 0
    while got < want and batches < int(cfg["max_batches_per_shard"]):
        part = sampler.draw(int(cfg["batch_size"]), rng)
        parts.append(part)
        got += len(part["q"])
        batches += 1
    pool = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    h, e = grasp_descriptors(pool["T_grasp"])
    bins = strata_index(h, e, strata)
    sel = water_fill(bins, size, n_bins, rng)
    sel = sel[rng.permutation(len(sel))]
    data = {k: v[sel] for k, v in pool.items()}
    T = data["T_grasp"]
    arrays = {
        "cond": condition_features(T, robot.config.reach_m).astype(np.float32),
        "x": sampler.codec.encode(data["q"], T).astype(np.float32),
        "weight": data["weight"].astype(np.float32),
        "T_grasp": T[:, :3, :].copy(),
        "q": data["q"],
        "bin": bins[sel].astype(np.int16),
        "manipulability": data["manipulability"].astype(np.float32),
        "limit_margin": data["limit_margin"].astype(np.float32),
        "visibility_margin": data["visibility_margin"].astype(np.float32),
        "density_ratio": data["density_ratio"].astype(np.float32),
    }
    if _WORKER["manifold"] is not None:
        arrays["y"] = manifold_targets(_WORKER["manifold"], data["q"], robot.lower[3:5],
                                       robot.upper[3:5], T).astype(np.float32)
    out = Path(out_path)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return {"file": out.name, "split": split, "index": index, "count": int(len(sel)),
            "sha256": _sha256(out), "candidates": int(batches * int(cfg["batch_size"])),
            "accepted": int(got), "bin_counts": np.bincount(bins[sel], minlength=n_bins).tolist(),
            "pool_bin_counts": np.bincount(bins, minlength=n_bins).tolist(),
            "seconds": time.perf_counter() - t0}


def _fingerprint(cfg: dict, robot: WholeBodyModel, manifold) -> dict:
    """What must agree for a rerun to resume a dataset (the worker count need not)."""
    cfg = {k: v for k, v in cfg.items() if k != "workers"}
    fp = {"format": DATASET_FORMAT, "config": cfg, "seed": int(cfg["seed"]),
          "robot": robot.config.name, "urdf_sha256": robot.urdf_sha256,
          "featurization": FEATURIZATION_VERSION, "joint_names": list(robot.joint_names),
          "reach_m": float(robot.config.reach_m)}
    fp["manifold"] = None if manifold is None else {
        "n_branches": int(manifold.n_branches), "lower": robot.lower[3:5].tolist(),
        "upper": robot.upper[3:5].tolist()}
    return fp


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def generate_dataset(config: Mapping[str, Any] | None, out_dir: str | Path, seed: int,
                     log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """Generate (or resume) a sharded, stratified dataset of (grasp, stance) pairs.

    Args:
        config: data options (see :func:`data_config` and ``config/data_lekiwi.yaml``).
        out_dir: output directory (created); holds ``manifest.json`` and the shards.
        seed: the dataset seed (overrides ``config['seed']``).
        log: where progress lines and the final statistics go.
        progress: show a tqdm progress bar.

    Returns:
        Path of ``manifest.json``.

    Raises:
        ConfigError: bad options, or ``out_dir`` holds a dataset made with other
            options, seed or robot description (use a fresh directory).
    """
    cfg = data_config(config)
    cfg["seed"] = int(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    robot = WholeBodyModel(RobotConfig.from_dict(cfg["robot"]))
    manifold = _manifold_solver(robot, cfg["manifold"])
    if manifold is None and cfg["density"] != "forward":
        log(f"data.density = {cfg['density']!r} needs the exact manifold, which is off or "
            "unavailable: the pairs keep the forward-sampling density")
    fp = _fingerprint(cfg, robot, manifold)
    man_path = out / "manifest.json"
    manifest = None
    if man_path.exists():
        try:
            old = json.loads(man_path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None:
            if {k: old.get(k) for k in fp} != json.loads(json.dumps(fp)):
                diff = [k for k in fp if json.loads(json.dumps(fp[k])) != old.get(k)]
                raise ConfigError(f"{out} holds a dataset made with other {diff}; "
                                  "use a fresh out_dir or delete it")
            manifest = old
    t_start = time.perf_counter()
    if manifest is None:
        rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], _PILOT_STREAM]))
        box, pilot = pilot_box(robot, cfg, rng, manifold)
        manifest = dict(fp, box=box.tolist(), pilot=pilot, shards=[], complete=False)
        log(f"pilot: {pilot['visible']}/{pilot['candidates']} visible; proposal box "
            f"{np.round(box, 3).tolist()} ({pilot.get('volume_fraction', 1):.3f} of the limits)")
        _write_json(man_path, manifest)
    box = np.asarray(manifest["box"])
    density_ref = manifest["pilot"].get("density_ref")
    # shards to make, and the ones already there and intact
    todo, done = [], {}
    for entry in manifest["shards"]:
        p = out / entry["file"]
        if p.exists() and _sha256(p) == entry["sha256"]:
            done[(entry["split"], entry["index"])] = entry
    size = int(cfg["shard_size"])
    for split, total in (("train", cfg["train_pairs"]), ("heldout", cfg["heldout_pairs"])):
        for k in range(int(np.ceil(total / size))):
            if (split, k) not in done:
                todo.append((split, k, min(size, total - k * size),
                             str(out / f"{split}_{k:05d}.npz")))
    manifest["shards"] = sorted(done.values(), key=lambda e: (SPLITS[e["split"]], e["index"]))
    if done:
        log(f"resuming: {len(done)} shards intact, {len(todo)} to make")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(t[2] for t in todo), unit="pair", unit_scale=True,
                   desc="dataset", file=sys.stderr)
    n_new = 0

    def _record(entry: dict) -> None:
        nonlocal n_new
        manifest["shards"].append(entry)
        manifest["shards"].sort(key=lambda e: (SPLITS[e["split"]], e["index"]))
        _write_json(man_path, manifest)
        n_new += entry["count"]
        if bar is not None:
            bar.update(entry["count"])

    workers = min(int(cfg["workers"]), max(1, len(todo)))
    if workers <= 1:
        _worker_init(cfg, box.tolist(), density_ref)
        for t in todo:
            _record(_make_shard(*t))
    else:
        ctx = mp.get_context("spawn")
        # one BLAS/OpenMP thread per worker: the workers are the parallelism
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: "1" for k in _THREAD_VARS})
        try:
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(cfg, box.tolist(), density_ref)) as pool:
                futures = [pool.submit(_make_shard, *t) for t in todo]
                for fut in cf.as_completed(futures):
                    _record(fut.result())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t_start
    manifest["complete"] = True
    manifest["stats"] = dataset_stats(manifest)
    if n_new:
        manifest["stats"]["last_run"] = {"pairs": n_new, "seconds": wall,
                                         "pairs_per_s": n_new / wall, "workers": workers}
    _write_json(man_path, manifest)
    log(format_stats(manifest))
    return man_path


# ----------------------------------------------------------------------- reading
def _manifest_path(path: str | Path) -> Path:
    p = Path(path)
    return p / "manifest.json" if p.is_dir() else p


def load_dataset(path: str | Path, split: str = "train", verify: bool = False) -> dict:
    """Load a split of a dataset into arrays.

    Args:
        path: ``manifest.json`` or its directory.
        split: ``"train"`` or ``"heldout"``.
        verify: check every shard's SHA-256 against the manifest.

    Returns:
        ``cond (N, 7) float32``, ``x (N, 9) float32``, ``weight (N,) float32``,
        ``T_grasp (N, 4, 4) float64``, ``q (N, 8) float64``, ``bin (N,)``,
        ``manipulability``, ``limit_margin``, ``visibility_margin`` ``(N,)`` and,
        when the dataset has manifold coordinates, ``y (N, 2 + nb) float32``.

    Raises:
        ConfigError: no manifest there, an unknown split, or a corrupted shard.
    """
    man_path = _manifest_path(path)
    if not man_path.exists():
        raise ConfigError(f"no dataset manifest at {man_path}; run generate_dataset first")
    manifest = json.loads(man_path.read_text())
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; known: {sorted(SPLITS)}")
    parts: dict[str, list] = {}
    for entry in manifest["shards"]:
        if entry["split"] != split:
            continue
        p = man_path.parent / entry["file"]
        if verify and _sha256(p) != entry["sha256"]:
            raise ConfigError(f"shard {p} does not match its SHA-256 in the manifest; "
                              "delete it and rerun generate_dataset to regenerate it")
        with np.load(p) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    if not parts:
        raise ConfigError(f"dataset {man_path} has no {split!r} shards")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    T = np.zeros((len(out["T_grasp"]), 4, 4))
    T[:, :3, :] = out["T_grasp"]
    T[:, 3, 3] = 1.0
    out["T_grasp"] = T
    return out


def load_manifest(path: str | Path) -> dict:
    """Read a dataset's manifest (JSON) as a dict."""
    return json.loads(_manifest_path(path).read_text())


def dataset_stats(manifest: Mapping[str, Any]) -> dict:
    """Counts per split and per (height, elevation) bin, and the acceptance rates."""
    strata = manifest["config"]["strata"]
    nh, ne = len(strata["height_edges_m"]) - 1, len(strata["elevation_edges_deg"]) - 1
    out = {}
    for split in SPLITS:
        es = [e for e in manifest["shards"] if e["split"] == split]
        if not es:
            continue
        counts = np.sum([e["bin_counts"] for e in es], axis=0).reshape(nh, ne)
        pool = np.sum([e.get("pool_bin_counts", e["bin_counts"]) for e in es],
                      axis=0).reshape(nh, ne)
        cand = sum(e["candidates"] for e in es)
        out[split] = {"pairs": int(counts.sum()), "candidates": int(cand),
                      "natural_bin_counts": pool.tolist(),
                      "accepted": int(sum(e["accepted"] for e in es)),
                      "bin_counts": counts.tolist(),
                      "shard_seconds": float(sum(e["seconds"] for e in es))}
    return out


def format_stats(manifest: Mapping[str, Any]) -> str:
    """Human-readable summary: pairs, acceptance, histograms of height and elevation."""
    stats = manifest.get("stats") or dataset_stats(manifest)
    strata = manifest["config"]["strata"]
    he, ee = strata["height_edges_m"], strata["elevation_edges_deg"]
    lines = []
    for split, s in stats.items():
        if split not in SPLITS:
            continue
        c = np.asarray(s["bin_counts"])
        nat = np.asarray(s.get("natural_bin_counts", c))
        lines.append(f"[{split}] {s['pairs']} pairs from {s['candidates']} candidates "
                     f"({s['accepted']} accepted before stratification, "
                     f"{s['accepted'] / max(s['candidates'], 1):.2%}); "
                     f"{s['pairs'] / max(s['shard_seconds'], 1e-9):.0f} pairs/s per worker")
        lines.append("  share per bin: natural (forward sampling, accepted) -> stratified")
        lines.append("  height (m)      " + "  ".join(
            f"[{he[i]:+.2f},{he[i + 1]:+.2f}) {nat[i].sum() / nat.sum():5.1%} -> "
            f"{c[i].sum() / c.sum():5.1%}" for i in range(len(he) - 1)))
        lines.append("  elevation (deg) " + "  ".join(
            f"[{ee[j]:+.0f},{ee[j + 1]:+.0f}) {nat[:, j].sum() / nat.sum():5.1%} -> "
            f"{c[:, j].sum() / c.sum():5.1%}" for j in range(len(ee) - 1)))
        lines.append("  stratified counts, height (rows) x elevation (cols):")
        lines.extend("    " + " ".join(f"{v:>7d}" for v in row) for row in c)
    last = stats.get("last_run")
    if last:
        lines.append(f"this run: {last['pairs']} pairs in {last['seconds']:.1f} s = "
                     f"{last['pairs_per_s']:.0f} pairs/s with {last['workers']} worker(s)")
    return "\n".join(lines)


# ----------------------------------------------------------- grasps for benchmarks
def sample_task_grasps(n: int, rng: np.random.Generator, robot: WholeBodyModel,
                       reachable_visible: bool = True,
                       config: Mapping[str, Any] | None = None) -> np.ndarray:
    """Grasps a LeKiwi user may ask for that have a feasible stance, stratified.

    Forward sampling (no quality rule) gives grasps with at least one stance
    within the joint limits (and, with ``reachable_visible``, whose front
    camera sees the tool unoccluded); water-filling over the (height,
    elevation) strata spreads them over floor, low-table, top-down, side and
    oblique grasps.

    Args:
        n: number of grasps.
        rng: random generator.
        robot: the whole-body model.
        reachable_visible: also require visibility (else reachability only).
        config: data options (strata, base extent); default :data:`DEFAULT_CONFIG`.

    Returns:
        ``(n, 4, 4)`` grasp poses ``T_world_grasp``.
    """
    cfg = data_config(config)
    cfg["robot"] = robot.config.to_dict()
    sampler = ForwardSampler(robot, cfg, box=None)
    strata = cfg["strata"]
    n_bins = (len(strata["height_edges_m"]) - 1) * (len(strata["elevation_edges_deg"]) - 1)
    pool, got = [], 0
    while got < 8 * n:
        T = sampler.draw(max(4096, 2 * n), rng, visible=reachable_visible, quality=False)
        pool.append(T["T_grasp"])
        got += len(T["T_grasp"])
    T = np.concatenate(pool)
    h, e = grasp_descriptors(T)
    sel = water_fill(strata_index(h, e, strata), n, n_bins, rng)
    return T[sel[rng.permutation(len(sel))]]


def sample_unreachable_grasps(n: int, rng: np.random.Generator, min_height_m: float = 0.7,
                              kind: str = "high") -> np.ndarray:
    """Grasps with no valid, visible LeKiwi stance, for false-success tests.

    * ``high``: ``z >= min_height_m``, any orientation. The packaged LeKiwi's tool
      never rises above 0.62 m at any configuration within limits (measured
      over 10^6 uniform configurations), so 0.7 m is out of reach with a margin.
    * ``from_below``: 0-0.3 m high, approach axis pointing up, 55-90 deg above
      the horizon (elevation -90 to -55 deg): reachable perhaps, never visible
      (the lowest elevation among 10^6 forward-sampled visible grasps is -29 deg).
    * ``mixed``: half of each.

    Args:
        n: number of grasps.
        rng: random generator.
        min_height_m: lowest grasp height of ``high`` (m).
        kind: ``"high"``, ``"from_below"`` or ``"mixed"``.

    Returns:
        ``(n, 4, 4)`` grasp poses.

    Raises:
        ConfigError: an unknown ``kind``.
    """
    if kind not in ("high", "from_below", "mixed"):
        raise ConfigError(f"kind {kind!r}: use 'high', 'from_below' or 'mixed'")
    if kind == "mixed":
        T = np.concatenate([sample_unreachable_grasps(n - n // 2, rng, min_height_m, "high"),
                            sample_unreachable_grasps(n // 2, rng, min_height_m, "from_below")])
        return T[rng.permutation(n)]
    if kind == "from_below":
        # approach axis a: elevation in [-90, -55] deg (pointing up), any heading and jaw roll
        el = np.radians(rng.uniform(-90.0, -55.0, size=n))
        hd = rng.uniform(-np.pi, np.pi, size=n)
        a = np.stack([np.cos(el) * np.cos(hd), np.cos(el) * np.sin(hd), -np.sin(el)], axis=1)
        r = rng.normal(size=(n, 3))
        bx = r - np.sum(r * a, axis=1, keepdims=True) * a
        bx /= np.linalg.norm(bx, axis=1, keepdims=True)
        T = np.zeros((n, 4, 4))
        T[:, :3, 0], T[:, :3, 1], T[:, :3, 2] = bx, np.cross(a, bx), a
        T[:, :2, 3] = rng.uniform(-2.0, 2.0, size=(n, 2))
        T[:, 2, 3] = rng.uniform(0.0, 0.3, size=n)
        T[:, 3, 3] = 1.0
        return T
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)
    T = np.zeros((n, 4, 4))
    T[:, :3, :3] = R
    T[:, :2, 3] = rng.uniform(-2.0, 2.0, size=(n, 2))
    T[:, 2, 3] = rng.uniform(min_height_m, min_height_m + 0.5, size=n)
    T[:, 3, 3] = 1.0
    return T


# --------------------------------------------------------------------------- CLI
def main(args: list[str] | None = None) -> int:
    """Generate a dataset from a config file: ``python -m reachability_ros.training.data``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/data_lekiwi.yaml")
    ap.add_argument("--out", default="data/lekiwi")
    ap.add_argument("--seed", type=int, default=None, help="default: the config's seed")
    ap.add_argument("--train-pairs", type=int, default=None)
    ap.add_argument("--heldout-pairs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ns = ap.parse_args(args)
    cfg = load_data_config(ns.config)
    for key in ("train_pairs", "heldout_pairs", "workers"):
        if getattr(ns, key) is not None:
            cfg[key] = getattr(ns, key)
    generate_dataset(cfg, ns.out, cfg["seed"] if ns.seed is None else ns.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
