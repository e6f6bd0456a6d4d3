"""Benchmark of the stance proposal pipeline: every sampler on the same grasps, one thread.

Usage:
    python bench/bench_pipeline.py [--grasps 200] [--unreachable 50] [--samples 1024]
                                   [--models models/lekiwi_manifold.onnx ...] [--no-rejection]
    python bench/bench_pipeline.py --no-rejection --models   # the default config and the grid
                                                             # only: closest to the service

Held-out grasps come from ``reachability_ros.evaluation.grasps`` (random in-limit
configurations whose tool the front camera sees; seed 2026, never used for training
data), plus unreachable grasps (half beyond the arm's reach, half within it but above
anything the front camera sees). For each sampler: success@1 (the top
stance re-verified with Pinocchio FK from the URDF: within limits, visible,
<= 1 mm and <= 0.5 deg), false successes on unreachable grasps, robustness of the
top stance, latency p50/p95/p99 (ms, end to end in ``propose``) and the mean
funnel. Prints markdown tables and the ratios to the rejection baseline.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reachability_ros.core.config import ProposalConfig, StanceConfig  # noqa: E402
from reachability_ros.core.geometry import pose_error  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.core.robot import WholeBodyModel  # noqa: E402
from reachability_ros.core.visibility import Visibility  # noqa: E402
from reachability_ros.evaluation.coverage import evaluate_samples  # noqa: E402
from reachability_ros.evaluation.ground_truth import ground_truth  # noqa: E402
from reachability_ros.evaluation.grasps import reachable_grasps, unreachable_grasps  # noqa: E402

BENCH_SEED = 2026


def verify_top(robot, vis, result, grasp, pos_tol=1e-3, ori_tol_deg=0.5):
    """Independent check of every returned stance: Pinocchio FK from the URDF, limits,
    visibility. Returns (top-1 ok, top-1 position error, number of invalid stances)."""
    if not result.ok:
        return False, np.nan, 0
    q = np.array([c.q for c in result.candidates])
    T = robot.fk_pinocchio(q, robot.config.tool_frame)
    dp, dr = pose_error(T, grasp.matrix()[None])
    ok = (dp <= pos_tol) & (np.degrees(dr) <= ori_tol_deg) & robot.within_limits(q) & (
        vis.check(q).visible)
    return bool(ok[0]), float(dp[0]), int((~ok).sum())


class SamplerStats:
    """Per-sampler accumulators; :meth:`step` runs one grasp."""

    def __init__(self, name, proposer, robot, vis):
        self.name, self.proposer, self.robot, self.vis = name, proposer, robot, vis
        self.lat, self.succ, self.rob, self.perr, self.cov = [], [], [], [], []
        self.invalid = self.false_succ = self.n_unreach = self.n_reach = 0
        self.funnel_sum = {}
        self.stage_ms = {}

    def step(self, g, seed, truth=None, reachable=True):
        t = time.perf_counter()
        r = self.proposer.propose(g, rng=np.random.default_rng(seed))
        self.lat.append((time.perf_counter() - t) * 1e3)
        if reachable:
            for k, v in r.timing_ms.items():
                self.stage_ms.setdefault(k, []).append(v)
        ok, dp, bad = verify_top(self.robot, self.vis, r, g)
        self.invalid += bad
        if not reachable:
            self.n_unreach += 1
            self.false_succ += int(r.ok)
            return
        self.n_reach += 1
        self.succ.append(ok)
        self.perr.append(dp)
        if r.ok:
            self.rob.append(r.candidates[0].metrics["robustness"])
        if truth is not None and truth["q"].shape[0]:
            fq = r.feasible_q if r.feasible_q is not None else np.zeros((0, self.robot.nq))
            self.cov.append(evaluate_samples(self.proposer.manifold, truth, fq))
        for k, v in r.funnel.items():
            self.funnel_sum[k] = self.funnel_sum.get(k, 0) + v

    def row(self):
        lat, cov = np.array(self.lat), self.cov
        return {
            "name": self.name,
            "success@1": float(np.mean(self.succ)),
            "false_success": self.false_succ,
            "invalid_returned": self.invalid,
            "n_unreachable": self.n_unreach,
            "robustness_top1": float(np.mean(self.rob)) if self.rob else float("nan"),
            "pos_err_top1_max_m": float(np.nanmax(self.perr))
            if np.isfinite(self.perr).any() else np.nan,
            "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99)),
            "funnel": {k: v / self.n_reach for k, v in self.funnel_sum.items()},
            "stages": {k: float(np.median(v)) for k, v in self.stage_ms.items()},
            "coverage_gap_mean": float(np.mean([c["coverage_gap_rad"] for c in cov])) if cov
            else np.nan,
            "coverage_gap_p95": float(np.percentile([c["coverage_gap_rad"] for c in cov], 95))
            if cov else np.nan,
            "kl": float(np.mean([c["kl"] for c in cov])) if cov else np.nan,
            "mode_recall": float(np.mean([c["mode_recall"] for c in cov])) if cov else np.nan,
        }


def run_interleaved(stats, reach, unreach, truths):
    """Every sampler on grasp 1, then every sampler on grasp 2, ...: a slow spell of the
    machine hits all samplers alike, so the latency ratios within a run are fair."""
    for i, g in enumerate(reach):
        truth = truths[i] if i < len(truths) else None
        for st in stats:
            st.step(g, [BENCH_SEED, i], truth)
    for i, g in enumerate(unreach):
        for st in stats:
            st.step(g, [BENCH_SEED, 10_000 + i], reachable=False)
    return [st.row() for st in stats]


def machine_speed() -> float:
    """Microseconds per small numpy call (np.sin on 256 doubles, median of 5 x 2,000): the
    pipeline is made of such calls, so this says how fast the machine was during a run."""
    a = np.random.default_rng(0).random(256)
    out = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(2000):
            np.sin(a)
        out.append((time.perf_counter() - t) / 2000 * 1e6)
    return float(np.median(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grasps", type=int, default=200)
    ap.add_argument("--unreachable", type=int, default=50)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--models", nargs="*", default=None,
                    help="ONNX models to benchmark (default: every models/*.onnx)")
    ap.add_argument("--no-rejection", action="store_true", help="skip the slow baseline")
    ap.add_argument("--coverage-grasps", type=int, default=50,
                    help="grasps on which coverage is measured against the exact ground truth")
    args = ap.parse_args(argv)
    robot = WholeBodyModel()
    vis = Visibility(robot)
    reach = reachable_grasps(robot, args.grasps, np.random.default_rng(BENCH_SEED),
                             visibility=vis).grasps()
    unreach = unreachable_grasps(args.unreachable, np.random.default_rng(BENCH_SEED + 1)).grasps()
    from reachability_ros.core.manifold import StanceManifold
    manifold = StanceManifold(robot)
    truths = [ground_truth(manifold, g.matrix(), vis, n_pan=48, n_lift=48)
              for g in reach[:args.coverage_grasps]]
    base = StanceConfig(proposal=ProposalConfig(n_samples=args.samples, top_k=args.top_k))
    models = args.models
    if models is None:
        models = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "models")
                        .glob("*.onnx"))
    # the service's default exactly as shipped (config/lekiwi.yaml: sampler, model, N)
    from reachability_ros.config_io import load_stance_config, resolve_data_path
    default = load_stance_config(None)
    dp = default.proposal
    default = replace(default, proposal=replace(
        dp, top_k=args.top_k, model_path=str(resolve_data_path(dp.model_path))
        if dp.model_path else ""))
    setups = [(f"default config ({Path(dp.model_path).name or dp.sampler}, "
               f"N = {dp.n_samples})", default)]
    setups += [(f"model {Path(m).name}", replace(base, proposal=replace(
        base.proposal, sampler="model", model_path=m))) for m in models]
    setups.append(("exact grid", replace(base, proposal=replace(base.proposal, sampler="grid"))))
    if not args.no_rejection:
        # the baseline of issue 4: annulus proposals, then the same whole-body solve
        # (Levenberg-Marquardt) and filters; and the same proposals finished by the exact
        # projection the learned 8-D models get (it keeps each proposal's pan and lift, not
        # its base pose)
        setups.append(("rejection baseline", replace(base, proposal=replace(
            base.proposal, sampler="rejection", refinement="numerical"))))
        setups.append(("rejection + exact projection", replace(base, proposal=replace(
            base.proposal, sampler="rejection", refinement="exact"))))
    stats = []
    for name, cfg in setups:
        if cfg.robot != robot.config:  # the checks above assume one robot for every row
            print(f"skipping {name}: its robot settings differ from the benchmark's",
                  file=sys.stderr)
            continue
        try:
            stats.append(SamplerStats(name, StanceProposer(cfg, robot), robot, vis))
        except Exception as exc:  # a missing piece is reported, not hidden
            print(f"skipping {name}: {exc}", file=sys.stderr)
    for st in stats:  # warm-up (first-call allocations, onnxruntime arenas)
        for g in reach[:3]:
            st.proposer.propose(g, rng=np.random.default_rng(0))
    speed = [machine_speed()]
    t = time.perf_counter()
    rows = run_interleaved(stats, reach, unreach, truths)
    speed.append(machine_speed())
    print(f"{len(stats)} samplers, interleaved grasp by grasp: {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    print(f"\n{len(reach)} reachable-visible held-out grasps, {len(unreach)} unreachable; "
          f"N = {args.samples} proposals (the default config: its own N), top-{args.top_k}; "
          "one thread")
    print(f"machine speed: {speed[0]:.2f} / {speed[1]:.2f} us per small numpy call (np.sin of "
          "256 doubles; before / after the run; lower is faster)\n")
    print("| sampler | success@1 | false success | invalid returned | robustness top-1 | "
          "max pos err top-1 | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {100 * r['success@1']:.1f} % | {r['false_success']}/"
              f"{r['n_unreachable']} | {r['invalid_returned']} | {r['robustness_top1']:.2f} | "
              f"{r['pos_err_top1_max_m']:.1e} m | {r['p50']:.1f} | {r['p95']:.1f} | "
              f"{r['p99']:.1f} |")
    print(f"\ncoverage of the verified stances against the exact ground truth "
          f"({len(truths)} grasps; seed 000 metrics):\n")
    print("| sampler | max azimuth gap mean (rad) | gap p95 (rad) | KL to truth | mode recall |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['coverage_gap_mean']:.3f} | {r['coverage_gap_p95']:.3f} | "
              f"{r['kl']:.3f} | {r['mode_recall']:.2f} |")
    for ref_name in ("rejection baseline", "exact grid"):
        ref = next((r for r in rows if r["name"] == ref_name), None)
        if ref:
            print(f"\nlatency ratio ({ref_name} p50 / sampler p50; > 1: faster than it):")
            for r in rows:
                print(f"- {r['name']}: {ref['p50'] / r['p50']:.2f}x")
    # latency in units of the machine's small-call time: how fast the machine must be for
    # a latency goal to hold at this cost (the pipeline is made of such calls)
    mean_speed = float(np.mean(speed))
    print(f"\np50 in small-call units (p50 / {mean_speed:.2f} us), and the call time at which "
          "p50 would be 5 ms:")
    for r in rows:
        units = r["p50"] * 1e3 / mean_speed
        print(f"- {r['name']}: {units:.0f} calls; 5 ms at <= {5e3 / units:.2f} us per call")
    stages = [k for k in ("sample", "coarse_filter", "refine", "verify", "rank", "robustness",
                          "total") if any(k in r["stages"] for r in rows)]
    print("\nmedian time per stage on the reachable grasps (ms; core/pipeline.py timing_ms):")
    print("| sampler | " + " | ".join(stages) + " |")
    print("|---|" + "---|" * len(stages))
    for r in rows:
        print(f"| {r['name']} | " + " | ".join(
            f"{r['stages'][k]:.2f}" if k in r["stages"] else "-" for k in stages) + " |")
    print("\nmean funnel per reachable grasp:")
    keys = [k for k in rows[0]["funnel"]] if rows else []
    print("| sampler | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for r in rows:
        print(f"| {r['name']} | " + " | ".join(f"{r['funnel'].get(k, 0):.0f}" for k in keys)
              + " |")


if __name__ == "__main__":
    main()
