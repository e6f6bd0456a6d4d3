"""Benchmark of the arrival at a stance: arm re-solve from the landed base, then correction.

Usage:
    python bench/bench_arrival.py [--grasps 100] [--landings 10] [--sigma-xy 0.03]
                                  [--sigma-yaw 3] [--scale-sigma 0.1] [--tf-noise-m 0]
                                  [--tf-noise-deg 0] [--config config/lekiwi.yaml]

Held-out grasps (``reachability_ros.evaluation.grasps``, seed 2026, never used for training
data; the front camera sees them at some stance). For each one, the stance server's best
stance (the shipped configuration, as ``/propose_stance`` answers) and ``--landings`` landed
bases drawn around it (Gaussian, ``--sigma-xy`` m in x and y of the stance's frame,
``--sigma-yaw`` deg), as Nav2 leaves the base within its goal tolerance. Two figures per
landing, both checked independently of the navigator's own solver: Pinocchio FK of the
URDF (``WholeBodyModel.fk_pinocchio``) from the base's TRUE pose with the commanded arm
joints against the grasp, the joint limits, and the visibility check:

- before: the arm alone, solved from the landed base (what a navigator without a
  correction would command);
- after: :meth:`GraspNavigator.arrive` as the ``stance_navigator`` node runs it: the arm
  solve, and while it fails the correction to the nearest exact stance on a simulated
  base (``evaluation/sim_base.py``: exact SE(2) integration of ``cmd_vel`` with a velocity
  scale error per motion, ``--scale-sigma``, and velocity noise; optional TF noise), then the
  arm solve from where the base stopped.

A landing succeeds when the tool is within the arrival tolerance (default 2 mm / 1 deg),
the arm within its limits and the tool visible. Prints a markdown table.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reachability_ros.config_io import load_stance_config, resolve_data_path  # noqa: E402
from reachability_ros.core.arrival import ArrivalPlanner  # noqa: E402
from reachability_ros.core.geometry import pose_error  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.evaluation.grasps import reachable_grasps  # noqa: E402
from reachability_ros.evaluation.sim_base import SimulatedRobot  # noqa: E402
from reachability_ros.ros.navigation import GraspNavigator  # noqa: E402
from reachability_ros.ros.navigator_io import NavigatorConfig  # noqa: E402

BENCH_SEED = 2026


def verify(proposer, q: np.ndarray, T: np.ndarray, tol_m: float, tol_deg: float):
    """Independent check of whole-body configurations ``(n, nq)`` (true base, commanded arm).

    Returns ``(ok, position_error_m, orientation_error_deg)``, ``(n,)`` each: Pinocchio FK of
    the URDF against the grasp, the joint limits and the visibility check.
    """
    robot = proposer.robot
    Tq = robot.fk_pinocchio(q, robot.config.tool_frame)
    dp, dr = pose_error(Tq, T[None])
    ok = (dp <= tol_m) & (np.degrees(dr) <= tol_deg) & robot.within_limits(q) & (
        proposer.visibility.check(q).visible)
    return ok, dp, np.degrees(dr)


def pct(x, q) -> float:
    """Percentile (NaN for an empty array)."""
    return float(np.percentile(x, q)) if len(x) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grasps", type=int, default=100)
    ap.add_argument("--landings", type=int, default=10)
    ap.add_argument("--sigma-xy", type=float, default=0.03, help="landing error std (m)")
    ap.add_argument("--sigma-yaw", type=float, default=3.0, help="landing yaw std (deg)")
    ap.add_argument("--scale-sigma", type=float, default=0.1,
                    help="velocity scale error of the simulated base, std per motion")
    ap.add_argument("--tf-noise-m", type=float, default=0.0, help="TF position noise std (m)")
    ap.add_argument("--tf-noise-deg", type=float, default=0.0, help="TF yaw noise std (deg)")
    ap.add_argument("--config", default="config/lekiwi.yaml")
    ap.add_argument("--seed", type=int, default=BENCH_SEED)
    args = ap.parse_args(argv)

    cfg = load_stance_config(resolve_data_path(args.config))
    if cfg.proposal.model_path:
        from dataclasses import replace
        model = str(resolve_data_path(cfg.proposal.model_path))
        cfg = replace(cfg, proposal=replace(cfg.proposal, model_path=model))
    proposer = StanceProposer(cfg)
    ncfg = NavigatorConfig()
    acfg = ncfg.arrival
    planner = ArrivalPlanner(proposer.robot, proposer.visibility, proposer.manifold, acfg)
    navigator = GraspNavigator(planner, ncfg, proposer.robot.config.arm_joints)
    grasps = reachable_grasps(proposer.robot, args.grasps, np.random.default_rng(args.seed),
                              visibility=proposer.visibility).grasps()
    rng = np.random.default_rng(args.seed + 1)
    sim = SimulatedRobot(proposer, rng, sigma_xy_m=args.sigma_xy,
                         sigma_yaw_rad=math.radians(args.sigma_yaw),
                         scale_sigma=args.scale_sigma, tf_noise_m=args.tf_noise_m,
                         tf_noise_rad=math.radians(args.tf_noise_deg))
    rows = {"before": [], "after": []}
    n_corr, dist, dur, sources, statuses = [], [], [], [], []
    no_stance = 0
    t0 = time.perf_counter()
    for g in grasps:
        T = g.matrix()
        result = proposer.propose(g, None, np.random.default_rng(0))
        if not result.ok:
            no_stance += 1
            continue
        stance_q = np.asarray(result.candidates[0].q, dtype=float)
        stance = result.candidates[0].base
        for _ in range(args.landings):
            sim.navigate(stance)
            landed_true, landed = sim.pose, sim.base_pose()
            before = planner.check(T, landed, stance_q[3:])
            q_before = np.concatenate([[landed_true.x, landed_true.y, landed_true.yaw],
                                       before.arm])
            rows["before"].append((q_before, T))
            arrival = navigator.arrive(sim, T, stance_q, landed)
            q_after = np.concatenate([[sim.pose.x, sim.pose.y, sim.pose.yaw], arrival.check.arm])
            rows["after"].append((q_after, T))
            statuses.append(arrival.status)
            n_corr.append(len(arrival.corrections))
            if arrival.corrections:
                dist.append(arrival.travelled_m)
                dur.append(sum(c.get("duration_s", 0.0) for c in arrival.corrections))
                sources += [c["target_source"] for c in arrival.corrections]
    elapsed = time.perf_counter() - t0
    n = len(rows["before"])
    print(f"{args.grasps} held-out grasps (seed {args.seed}), {no_stance} without a stance; "
          f"{n} landings (sigma {args.sigma_xy * 100:g} cm / {args.sigma_yaw:g} deg; scale "
          f"error {args.scale_sigma:g}, TF noise {args.tf_noise_m * 1e3:g} mm / "
          f"{args.tf_noise_deg:g} deg); tolerance {acfg.tolerance_m * 1e3:g} mm / "
          f"{acfg.tolerance_deg:g} deg; sampler {proposer.sampler_name}; {elapsed:.1f} s\n")
    print("| | reaches the grasp (FK, limits, visible) | position error p50 / p90 / p99 (mm) "
          "| orientation error p50 / p90 / p99 (deg) |")
    print("|---|---|---|---|")
    for key in ("before", "after"):
        q = np.array([r[0] for r in rows[key]])
        T = np.array([r[1] for r in rows[key]])
        ok, dp, dr = [], [], []
        for qi, Ti in zip(q, T):
            o, p, r = verify(proposer, qi[None], Ti, acfg.tolerance_m, acfg.tolerance_deg)
            ok.append(o[0])
            dp.append(p[0] * 1e3)
            dr.append(r[0])
        label = "arm only, from the landed base" if key == "before" else (
            "arm + correction (navigator)")
        print(f"| {label} | {100 * np.mean(ok):.1f} % ({int(np.sum(ok))}/{n}) | "
              f"{pct(dp, 50):.2f} / {pct(dp, 90):.2f} / {pct(dp, 99):.2f} | "
              f"{pct(dr, 50):.2f} / {pct(dr, 90):.2f} / {pct(dr, 99):.2f} |")
    n_corr = np.array(n_corr)
    print(f"\ncorrections per landing: 0: {np.mean(n_corr == 0) * 100:.1f} %, 1: "
          f"{np.mean(n_corr == 1) * 100:.1f} %, 2+: {np.mean(n_corr >= 2) * 100:.1f} %; "
          f"corrected landings: distance travelled p50 / p90 / max {pct(dist, 50) * 100:.1f} / "
          f"{pct(dist, 90) * 100:.1f} / {max(dist, default=float('nan')) * 100:.1f} cm, "
          f"duration p50 / p90 {pct(dur, 50):.1f} / {pct(dur, 90):.1f} s; targets: "
          f"{sources.count('manifold')} nearest exact stance, {sources.count('grid')} a grid "
          f"stance, {sources.count('stance')} the "
          f"proposed stance; navigator outcomes: "
          + ", ".join(f"{s} {statuses.count(s)}" for s in sorted(set(statuses))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
