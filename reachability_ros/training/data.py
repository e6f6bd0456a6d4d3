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
   option (``quality.rule``): ``none`` (keep all), ``hard`` (keep ``S >= min_score``), ``soft``
   (keep with probability ``S / S_max``, ``S_max = 1``) or ``weight`` (keep all,
   store ``S`` as the sample weight).
4. Density on the stance manifold (``density`` option). For one grasp the
   feasible stances form a 2-D manifold (``core/manifold.py``).
   Forward sampling, uniform in joint space, puts on it a density
   proportional to ``1 / |det J_6|`` per ``dpan dlift`` (change of variables,
   :meth:`ForwardSampler.density_ratio`), which over-weights stances where the
   arm is badly conditioned. ``area`` (default) accepts each stance with
   probability ``w / w_ref``, ``w = a(q) |det J_6(q)|`` (``a``: the manifold's
   area element), so the kept stances are **uniform in the manifold's area**
   (in base-pose space, metric ``dx^2 + dy^2 + (R dyaw)^2``), the same measure
   as the exact ground truth (``evaluation.ground_truth``) that evaluation
   compares with, times the quality rule. Uniform in area rather than in joint space or
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
report them as unreachable (``evaluation.grasps.unreachable_grasps`` makes such
grasps). ``python -m reachability_ros.training.cli dataset --config
config/data_lekiwi.yaml --out DIR`` prints the measured histograms of grasp height
and approach elevation.

This module draws the pairs (:class:`ForwardSampler`, :func:`pilot_box`,
:func:`manifold_targets`); ``training/dataset.py`` writes, resumes and reads the
sharded dataset. The options are :class:`~reachability_ros.training.config.DataConfig`.
"""


from __future__ import annotations

import numpy as np

from reachability_ros.core.canonical import StanceCodec
from reachability_ros.core.errors import ConfigError, DescriptionError
from reachability_ros.core.geometry import planar_transform
from reachability_ros.core.robot import WholeBodyModel
from reachability_ros.core.visibility import Visibility
from reachability_ros.evaluation.ground_truth import area_element

from .config import GeneratorConfig


# -------------------------------------------------------------------- the sampler
class ForwardSampler:
    """Forward sampling of visible, quality-accepted whole-body configurations.

    Args:
        robot: the whole-body model.
        config: the generator options (a :class:`DataConfig` or :class:`GeneratorConfig`).
        box: ``(2, n_arm)`` proposal box of the arm joints; default the limits.
        visibility: a :class:`Visibility` of ``robot``; built when omitted.
        manifold: the exact stance manifold (``core.manifold.StanceManifold``);
            needed for the ``area`` densities, ignored for ``forward``.
        density_ref: the reference ``w_ref`` of the area acceptance (see
            :meth:`density_ratio`); ``None`` = do not apply the density option.
    """

    def __init__(self, robot: WholeBodyModel, config: GeneratorConfig,
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
        qc = self.config.quality
        w = self.robot.manipulability(q, oMi=oMi)
        m = self.robot.limit_margin(q)
        s = (np.clip(w / qc.manipulability_ref, 0.0, 1.0)
             * np.clip(m / qc.limit_margin_ref, 0.0, 1.0))
        return {"manipulability": w, "limit_margin": m, "score": s}

    def density_ratio(self, q: np.ndarray, oMi: np.ndarray | None = None) -> np.ndarray:
        """Ratio ``w (N,)`` of the area-uniform to the forward-sampled density on the fiber.

        Forward sampling draws ``q`` uniformly (arm in a box, base uniform). For
        a fixed grasp, change variables ``q -> (T, pan, lift)`` on a branch: the
        density of ``(pan, lift)`` given ``T`` is proportional to
        ``1 / |det J_6(q)|``, where ``J_6`` is the 6 x 6 minor of the
        whole-body tool Jacobian without the pan and lift columns (world-aligned
        twist coordinates carry the Haar measure of SE(3)). The exact ground truth
        (``evaluation.ground_truth``) is uniform in the manifold's area, whose
        density per ``dpan dlift`` is the area element ``a(q)``. Hence
        ``w = a(q) |det J_6(q)|``; both factors are bounded, so ``w`` is too.

        Args:
            q: ``(N, 8)`` configurations.
            oMi: their joint transforms, if the caller has them.
        """
        J = self.robot.jacobian(q, oMi=oMi)
        minor = J[:, :, [0, 1, 2, 5, 6, 7]]
        return area_element(self.robot, q, jacobian=J) * np.abs(np.linalg.det(minor))

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
            ok = res.visible & (res.margin >= cfg.min_visibility_margin_m)
            vis_margin[keep] = res.margin
            keep = keep[ok]
        # the rest of the randomness, drawn for the survivors only (cheaper, same law)
        u_soft = np.zeros(n)
        u_density = np.zeros(n)
        u_soft[keep], u_density[keep] = rng.uniform(size=(2, len(keep)))
        qual = self.quality_score(q0[keep], oMi=oMi[keep])
        weight = np.ones(len(keep))
        if quality:
            rule, s = cfg.quality.rule, qual["score"]
            if rule == "hard":
                ok = s >= cfg.quality.min_score
            elif rule == "soft":
                ok = u_soft[keep] < s
            else:
                ok = np.ones(len(keep), dtype=bool)
                if rule == "weight":
                    weight = s.copy()
            keep, weight = keep[ok], weight[ok]
            qual = {k: v[ok] for k, v in qual.items()}
        density = np.ones(len(keep))
        mode = cfg.density
        if mode != "forward" and self.manifold is not None and self.density_ref is not None:
            density = self.density_ratio(q0[keep], oMi=oMi[keep])
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
            [cfg.base_extent_m, cfg.base_extent_m, np.pi])
        T_world_base = planar_transform(q[:, 0], q[:, 1], q[:, 2])
        return {"q": q, "T_grasp": T_world_base @ T_base_tool[keep], "weight": weight,
                "manipulability": qual["manipulability"], "limit_margin": qual["limit_margin"],
                "visibility_margin": vis_margin[keep], "density_ratio": density}


def pilot_box(robot: WholeBodyModel, config: GeneratorConfig,
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
    n, bs = config.pilot_candidates, config.batch_size
    q = np.concatenate([sampler.draw(min(bs, n - start), rng, quality=False)["q"]
                        for start in range(0, n, bs)])
    lo, hi = robot.lower[3:], robot.upper[3:]
    if len(q) == 0:
        return np.array([lo, hi]), {"candidates": n, "visible": 0, "density_ref": None}
    margin = config.box_margin_rad
    box = np.array([np.maximum(q[:, 3:].min(0) - margin, lo),
                    np.minimum(q[:, 3:].max(0) + margin, hi)])
    ref = None
    if manifold is not None and config.density != "forward":
        sampler.manifold = manifold
        w = sampler.density_ratio(q)
        ref = float(np.percentile(w, config.density_ref_percentile))
    return box, {"candidates": n, "visible": int(len(q)), "density_ref": ref,
                 "volume_fraction": float(np.prod((box[1] - box[0]) / (hi - lo)))}


# ------------------------------------------------------------------- manifold (y)
def manifold_solver(robot: WholeBodyModel, mode: str):
    """Return the exact stance manifold of ``robot`` (``core.manifold``), or None.

    Args:
        robot: the whole-body model.
        mode: ``off`` (None), ``auto`` (None when the description lacks the structure)
            or ``on``.

    Raises:
        ConfigError: ``on`` and the description lacks the closed form's structure.
    """
    if mode == "off":
        return None
    try:
        from reachability_ros.core.manifold import StanceManifold
        return StanceManifold(robot)
    except (ImportError, DescriptionError) as exc:  # not there, or not this structure
        if mode == "on":
            raise ConfigError(f"manifold = 'on' but the exact manifold solver is not usable "
                              f"for this robot: {exc}") from None
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
