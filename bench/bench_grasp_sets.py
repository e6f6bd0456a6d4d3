"""Benchmark of grasp sets and grasp freedom: one batched request against a loop of singles.

Usage:
    python bench/bench_grasp_sets.py [--objects 30] [--sizes 1 10 100]
                                     [--budgets 512 1024 2048] [--no-budgets]

Grasp sets are a detector's candidates for one object (``evaluation.grasps.detector_grasps``:
grasps perturbed around the object, 1.5 cm and 10 deg, approaching from above, at 45 deg
and from the side, any heading and jaw roll); the objects stand 0 to 0.25 m above the
floor, the robot starts 2 m away facing them (seed 2026). The default config (the shipped
manifold flow) on one thread:

1. **Budget** (``proposal.set_samples``, sets of the largest size): latency p50/p99 and the
   quality of the answer (sets with a stance, mean top-1 score) for each budget.
2. **Sets against singles**: each set answered in one request and as a loop of one request
   per grasp (``n_samples`` each), interleaved; latency p50/p99 of both and their ratio
   (median over sets of loop time / set time); whether the set's top-1 is as good as the
   best single answer's (the singles draw 256 proposals per grasp; their best top-1 is
   also the luckiest of many 16-perturbation robustness estimates, so the gap is also
   given without the robustness term, best stance against best stance).
3. **Free roll against fixed roll** (sets of 10): the fraction of grasps with any valid
   stance (a single request each), the fraction of sets with one, the robustness of the
   set's top-1 and its travel from the start pose.
4. **Free roll against the exact ground truth** (``--truth N``): N grasps of random
   position and orientation whose exact free-roll stance set
   (``evaluation.ground_truth.free_roll_ground_truth``: 24 rolls, 24 x 24 cells each) is
   not empty; success@1 of the shipped model conditioned on one random roll per proposal
   (and of the exact grid with 8 rolls), the same grasps with their roll fixed, and the
   fraction of the true set's feasible rolls where the sampler found a stance.

Latency depends on the machine's load: the speed of one small numpy call is printed
at the start and the end (as in ``bench_pipeline.py``); compare rows within one run.

Every returned stance is re-checked with Pinocchio FK (``robot.fk_pinocchio``): it reaches
its ``tool_pose`` to 1e-6 m and the tool pose differs from its grasp only by a turn about
the approach axis (1e-9 rad); the count of failures is printed.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reachability_ros.config_io import load_stance_config  # noqa: E402
from reachability_ros.core.geometry import log_so3, quat_to_matrix  # noqa: E402
from reachability_ros.core.paths import resolve_data_path  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.core.types import BasePose, Grasp  # noqa: E402
from reachability_ros.core.visibility import Visibility  # noqa: E402
from reachability_ros.evaluation.grasps import detector_grasps  # noqa: E402
from reachability_ros.evaluation.ground_truth import free_roll_ground_truth  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import machine_speed  # noqa: E402

BENCH_SEED = 2026


def objects(n: int, size: int, rng: np.random.Generator) -> list:
    """``n`` (grasps, start pose) pairs: a detector's ``size`` grasps and where the robot is."""
    out = []
    for _ in range(n):
        c = np.array([rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(0.0, 0.25)])
        gs = detector_grasps(c, size, rng).grasps()
        az = rng.uniform(-np.pi, np.pi)
        start = BasePose(c[0] + 2.0 * math.cos(az), c[1] + 2.0 * math.sin(az), az + math.pi)
        out.append((gs, start))
    return out


def with_freedom(grasps: list, free_roll: bool) -> list:
    return [Grasp(g.position, g.orientation, g.frame_id, free_roll=free_roll) for g in grasps]


def check(robot, vis, result, grasps) -> int:
    """Count returned stances that fail the independent check (module docstring)."""
    if not result.ok:
        return 0
    q = np.array([c.q for c in result.candidates])
    T = robot.fk_pinocchio(q, robot.config.tool_frame)
    bad = (~robot.within_limits(q)) | (~vis.check(q).visible)
    for i, c in enumerate(result.candidates):
        g = grasps[c.grasp_index]
        R_tool = quat_to_matrix(np.array(c.tool_pose.orientation))
        R_req = quat_to_matrix(np.array(g.orientation))
        off = log_so3(R_req.T @ R_tool)[:2]
        bad[i] |= (np.linalg.norm(T[i, :3, 3] - np.array(c.tool_pose.position)) > 1e-6
                   or np.linalg.norm(log_so3(R_tool.T @ T[i, :3, :3])) > 1e-6
                   or np.hypot(*off) > 1e-9 or c.tool_pose.position != tuple(g.position))
    return int(bad.sum())


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1e3


def pct(values, p):
    return float(np.percentile(values, p)) if len(values) else float("nan")


def budget_table(proposers: dict, sets: list, robot, vis) -> None:
    lat = {b: [] for b in proposers}
    found = {b: 0 for b in proposers}
    score = {b: [] for b in proposers}
    bad = 0
    for i, (gs, start) in enumerate(sets):
        for b, p in proposers.items():  # interleaved: a slow spell hits every budget alike
            r, ms = timed(lambda: p.propose(gs[0], start, np.random.default_rng([BENCH_SEED, i]),
                                            alternatives=gs[1:]))
            lat[b].append(ms)
            found[b] += r.ok
            score[b].append(r.candidates[0].score if r.ok else np.nan)
            bad += check(robot, vis, r, gs)
    n = len(sets)
    print(f"\n### Budget: sets of {len(sets[0][0])} grasps, {n} sets\n")
    print("| set_samples | p50 ms | p99 ms | sets with a stance | mean top-1 score |")
    print("|---|---|---|---|---|")
    for b in proposers:
        print(f"| {b} | {pct(lat[b], 50):.1f} | {pct(lat[b], 99):.1f} | {found[b]}/{n} | "
              f"{np.nanmean(score[b]):.3f} |")
    print(f"\nreturned stances failing the FK check: {bad}")


def sets_vs_singles(p: StanceProposer, sets: list, robot, vis) -> dict:
    set_ms, loop_ms, ratio, as_good, gap, gap_base = [], [], [], 0, [], []
    both = bad = 0
    for i, (gs, start) in enumerate(sets):
        rng = [BENCH_SEED, i]
        r, ms = timed(lambda: p.propose(gs[0], start, np.random.default_rng(rng),
                                        alternatives=gs[1:]))
        singles, lms = timed(lambda: [p.propose(g, start, np.random.default_rng(rng + [j]))
                                      for j, g in enumerate(gs)])
        set_ms.append(ms)
        loop_ms.append(lms)
        ratio.append(lms / ms)
        bad += check(robot, vis, r, gs)
        best = max((s.candidates[0].score for s in singles if s.ok), default=None)
        if best is not None and r.ok:
            both += 1
            as_good += r.candidates[0].score >= best - 0.1
            gap.append(best - r.candidates[0].score)
            gap_base.append(max(base_score(c) for s in singles for c in s.candidates)
                            - max(base_score(c) for c in r.candidates))
    return {"size": len(sets[0][0]), "n": len(sets), "set_p50": pct(set_ms, 50),
            "set_p99": pct(set_ms, 99), "loop_p50": pct(loop_ms, 50),
            "loop_p99": pct(loop_ms, 99), "ratio_p50": pct(ratio, 50), "both": both,
            "as_good": as_good, "gap_mean": float(np.mean(gap)) if gap else float("nan"),
            "gap_base": float(np.mean(gap_base)) if gap_base else float("nan"), "bad": bad}


def base_score(c) -> float:
    """The score without the robustness term (a 16-perturbation estimate: noisy)."""
    return c.score - c.terms["robustness"]


def freedom_table(p: StanceProposer, sets: list, robot, vis) -> None:
    print(f"\n### Free roll against fixed roll: sets of {len(sets[0][0])} grasps, "
          f"{len(sets)} sets\n")
    print("| roll | grasps with a stance | sets with a stance | top-1 score | top-1 robustness "
          "| top-1 travel from start (m) | set p50 ms |")
    print("|---|---|---|---|---|---|---|")
    bad = 0
    for free in (False, True):
        n_grasps = grasp_ok = set_ok = 0
        rob, travel, lat, score = [], [], [], []
        for i, (gs, start) in enumerate(sets):
            gs = with_freedom(gs, free)
            for j, g in enumerate(gs):
                r = p.propose(g, start, np.random.default_rng([BENCH_SEED, i, j]))
                n_grasps += 1
                grasp_ok += r.ok
                bad += check(robot, vis, r, [g])
            r, ms = timed(lambda: p.propose(gs[0], start, np.random.default_rng([BENCH_SEED, i]),
                                            alternatives=gs[1:]))
            lat.append(ms)
            bad += check(robot, vis, r, gs)
            if r.ok:
                set_ok += 1
                c = r.candidates[0]
                rob.append(c.metrics["robustness"])
                score.append(c.score)
                travel.append(math.hypot(c.q[0] - start.x, c.q[1] - start.y))
        print(f"| {'free' if free else 'fixed'} | {grasp_ok / n_grasps:.3f} | "
              f"{set_ok}/{len(sets)} | {np.mean(score):.3f} | {np.mean(rob):.3f} | "
              f"{np.mean(travel):.3f} | "
              f"{pct(lat, 50):.1f} |")
    print(f"\nreturned stances failing the FK check: {bad}")


def truth_table(proposers: dict, n: int, robot, vis) -> None:
    rng = np.random.default_rng(BENCH_SEED + 1)
    manifold = next(iter(proposers.values())).manifold
    cases, drawn = [], 0
    while len(cases) < n:
        drawn += 1
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        g = Grasp((rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-0.05, 0.35)),
                  tuple(quat), "map", free_roll=True)
        gt = free_roll_ground_truth(manifold, g.matrix(), vis, n_roll=24, n_pan=24, n_lift=24)
        if not gt["empty"]:
            cases.append((g, gt))
    print(f"\n### Free roll against the exact ground truth: {n} grasps with a non-empty "
          f"free-roll set (of {drawn} drawn)\n")
    print("| sampler | success@1, free roll | success@1, the roll fixed | true rolls reached | "
          "p50 ms | FK check failures |")
    print("|---|---|---|---|---|---|")
    for name, p in proposers.items():
        ok = fixed = bad = 0
        reached, lat = [], []
        for i, (g, gt) in enumerate(cases):
            r, ms = timed(lambda: p.propose(g, rng=np.random.default_rng([BENCH_SEED, i])))
            lat.append(ms)
            bad += check(robot, vis, r, [g])
            ok += r.ok
            fixed += p.propose(Grasp(g.position, g.orientation, "map"),
                               rng=np.random.default_rng([BENCH_SEED, i])).ok
            if r.ok:  # the rolls of the verified stances, binned like the truth
                T = robot.fk_pinocchio(r.feasible_q, robot.config.tool_frame)
                R0 = quat_to_matrix(np.array(g.orientation))
                w = log_so3(np.einsum("ji,njk->nik", R0, T[:, :3, :3]))
                got = np.round(np.mod(w[:, 2], 2 * np.pi) / (2 * np.pi / 24)).astype(int) % 24
                true = set(np.flatnonzero(gt["n_per_roll"]).tolist())
                reached.append(len(true & set(got.tolist())) / len(true))
        print(f"| {name} | {ok / n:.3f} ({ok}/{n}) | {fixed / n:.3f} | "
              f"{np.mean(reached):.3f} | {pct(lat, 50):.1f} | {bad} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=30, help="sets per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--budgets", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--no-budgets", action="store_true", help="skip the budget table")
    ap.add_argument("--truth", type=int, default=300,
                    help="grasps of the ground-truth table (0: skip it)")
    args = ap.parse_args(argv)
    cfg = load_stance_config(None)
    pc = cfg.proposal
    cfg = replace(cfg, proposal=replace(pc, model_path=str(resolve_data_path(pc.model_path))))
    base = StanceProposer(cfg)
    robot = base.robot
    vis = Visibility(robot)
    print(f"sampler {base.sampler_name}, n_samples {pc.n_samples}, set_samples "
          f"{pc.set_samples}, top_k {pc.top_k}; one thread; machine speed "
          f"{machine_speed():.2f} us per np.sin of 256 doubles (latency follows it)")
    rng = np.random.default_rng(BENCH_SEED)
    by_size = {s: objects(args.objects, s, rng) for s in args.sizes}
    for p_warm in range(3):  # warm-up: onnxruntime and numpy first calls
        gs, start = by_size[args.sizes[-1]][0]
        base.propose(gs[0], start, alternatives=gs[1:])
    if not args.no_budgets:
        proposers = {b: StanceProposer(replace(cfg, proposal=replace(cfg.proposal,
                                                                     set_samples=b)), robot)
                     for b in args.budgets}
        budget_table(proposers, by_size[max(args.sizes)], robot, vis)
    print(f"\n### Sets against a loop of single requests (set_samples {pc.set_samples})\n")
    print("| grasps | sets | set p50 ms | set p99 ms | loop p50 ms | loop p99 ms | "
          "loop / set (p50) | set top-1 within 0.1 of the best single | mean gap | "
          "mean gap without robustness | FK check failures |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in args.sizes:
        r = sets_vs_singles(base, by_size[s], robot, vis)
        print(f"| {r['size']} | {r['n']} | {r['set_p50']:.1f} | {r['set_p99']:.1f} | "
              f"{r['loop_p50']:.1f} | {r['loop_p99']:.1f} | {r['ratio_p50']:.1f}x | "
              f"{r['as_good']}/{r['both']} | {r['gap_mean']:.3f} | {r['gap_base']:.3f} | "
              f"{r['bad']} |")
    size = 10 if 10 in by_size else args.sizes[0]
    freedom_table(base, by_size[size], robot, vis)
    if args.truth:
        grid = StanceProposer(replace(cfg, proposal=replace(cfg.proposal, sampler="grid",
                                                            model_path="")), robot)
        truth_table({"model (default)": base, "exact grid": grid}, args.truth, robot, vis)
    print(f"\nmachine speed at the end: {machine_speed():.2f} us per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
