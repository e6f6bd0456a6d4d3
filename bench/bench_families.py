"""Every model family on the same held-out grasps against the exact ground truth, one run.

Usage:
    python bench/bench_families.py [--grasps 200] [--unreachable 50] [--samples 256]
                                   [--sweep 16 32 64 128 256 512 1024] [--target 0.995]
                                   [--models models/*.onnx] [--rejection]

Held-out grasps: ``evaluation.grasps.reachable_grasps`` with seed 2026 (as
``bench/bench_pipeline.py``; never used for training data), plus unreachable grasps for
false successes. For each grasp the exact ground truth (``evaluation.ground_truth``,
64 x 64 (pan, lift) cells x 4 branches, visible and within limits) and its quality
(``evaluation.quality``: the ranking's visibility, manipulability, limit-margin and
linearized-robustness terms with 64 fixed base perturbations) give the best exact
stance and the quality above which a stance is among the best 10 % of the grasp's
stance set (by area).

Every sampler (each ONNX model, the exact grid, optionally the rejection baseline) runs
the full pipeline (``StanceProposer.propose``, top-10, one thread) at every sample count
of ``--sweep``, interleaved grasp by grasp (every sampler at every N on one grasp, then
the next), so that a slow spell of the machine hits all alike and latencies at different
N compare. From each answer:

* raw samples (the verified stances the sampler's proposals became, ``feasible_q``):
  coverage against the truth (largest uncovered azimuth gap, KL to the true density
  over (branch, pan, lift) cells, mode recall: seed 000's metrics), the fraction of the
  N proposals that are feasible stances and that are *good* (in the best 10 %), and the
  best quality among them relative to the best exact stance (best-of-N);
* the pipeline: success@1 (the top stance re-verified with Pinocchio FK from the URDF:
  within limits, visible, <= 1 mm / 0.5 deg), its quality relative to the best exact
  stance, the number of stances returned, and the latency (end to end in ``propose``).

``N*`` is the smallest swept sample count whose success@1 reaches ``--target``; the
table gives the latency there. Model size and parameter count come from the file,
training time from its metadata (``metrics.train_wall_s``) where the trainer stored it.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import machine_speed, verify_top  # noqa: E402

from reachability_ros.core.config import ProposalConfig, StanceConfig  # noqa: E402
from reachability_ros.core.manifold import StanceManifold  # noqa: E402
from reachability_ros.core.onnx_sampler import read_metadata  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.core.robot import WholeBodyModel  # noqa: E402
from reachability_ros.core.visibility import Visibility  # noqa: E402
from reachability_ros.evaluation.coverage import evaluate_samples  # noqa: E402
from reachability_ros.evaluation.grasps import reachable_grasps, unreachable_grasps  # noqa: E402
from reachability_ros.evaluation.ground_truth import ground_truth  # noqa: E402
from reachability_ros.evaluation.quality import StanceQuality, quality_reference  # noqa: E402

BENCH_SEED = 2026
TOP_FRACTION = 0.1


def model_facts(path: str) -> dict:
    """Family, size (bytes), parameters and training time (s) of an ONNX model file."""
    md = read_metadata(path)
    metrics = json.loads(md.get("metrics", "{}"))
    params = float("nan")
    try:
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(path)
        params = float(sum(numpy_helper.to_array(t).size for t in proto.graph.initializer))
    except ImportError:  # onnx is a training extra; the size still says enough
        pass
    return {"family": md["family"], "bytes": float(Path(path).stat().st_size),
            "params": params, "train_s": float(metrics.get("train_wall_s", float("nan")))}


class Row:
    """Accumulators of one sampler over the sweep; :meth:`step` runs one request."""

    def __init__(self, name, configs, robot, vis, quality, facts):
        self.name, self.robot, self.vis, self.quality, self.facts = (
            name, robot, vis, quality, facts)
        self.proposers = {n: StanceProposer(cfg, robot) for n, cfg in configs.items()}
        self.manifold = next(iter(self.proposers.values())).manifold
        self.data: dict[int, dict[str, list]] = {n: {} for n in configs}
        self.false_success: dict[int, int] = {}

    def _add(self, n, key, value):
        self.data[n].setdefault(key, []).append(value)

    def step(self, n, grasp, seed, gt, ref):
        """One request at N = n; records latency, success, quality and coverage."""
        proposer = self.proposers[n]
        t = time.perf_counter()
        r = proposer.propose(grasp, rng=np.random.default_rng(seed))
        self._add(n, "latency_ms", (time.perf_counter() - t) * 1e3)
        for stage, ms in r.timing_ms.items():
            self._add(n, f"stage_{stage}", ms)
        ok, _, _ = verify_top(self.robot, self.vis, r, grasp)
        self._add(n, "success", ok)
        self._add(n, "returned", len(r.candidates))
        fq = r.feasible_q if r.feasible_q is not None else np.zeros((0, self.robot.nq))
        n_prop = max(int(r.funnel.get("proposed", n)), 1)
        qual = self.quality.evaluate(fq)["quality"] if len(fq) else np.zeros(0)
        best = ref["best"]
        self._add(n, "frac_feasible", len(fq) / n_prop)
        self._add(n, "frac_good", float((qual >= ref["threshold"]).sum()) / n_prop)
        self._add(n, "best_of_n", float(qual.max() / best) if len(qual) else 0.0)
        top = (self.quality.evaluate(np.array([r.candidates[0].q]))["quality"][0] / best
               if r.ok else 0.0)
        self._add(n, "top1_quality", float(top))
        cov = evaluate_samples(self.manifold, gt, fq)
        for k in ("coverage_gap_rad", "kl", "mode_recall"):
            self._add(n, k, cov[k])

    def unreachable(self, n, grasp, seed):
        """Count a false success of N = n on an unreachable grasp."""
        r = self.proposers[n].propose(grasp, rng=np.random.default_rng(seed))
        self.false_success[n] = self.false_success.get(n, 0) + int(r.ok)

    def stat(self, n, key, fn=np.mean):
        v = np.asarray(self.data[n].get(key, []), dtype=float)
        v = v[np.isfinite(v)]
        return float(fn(v)) if len(v) else float("nan")

    def n_star(self, target):
        """Smallest swept N whose success@1 reaches ``target`` (None: none does)."""
        for n in sorted(self.data):
            if self.stat(n, "success") >= target:
                return n
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grasps", type=int, default=200)
    ap.add_argument("--unreachable", type=int, default=50)
    ap.add_argument("--samples", type=int, default=256,
                    help="N of the raw-sample columns (coverage, good, best-of-N)")
    ap.add_argument("--small", type=int, default=32, help="N of the second best-of-N column")
    ap.add_argument("--sweep", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512, 1024])
    ap.add_argument("--target", type=float, default=0.995, help="success@1 that defines N*")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--models", nargs="*", default=None,
                    help="ONNX models (default: every models/*.onnx)")
    ap.add_argument("--rejection", action="store_true", help="add the (slow) rejection baseline")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    args = ap.parse_args(argv)
    sweep = sorted(set(args.sweep) | {args.samples, args.small})
    t_start = time.perf_counter()
    robot = WholeBodyModel()
    vis = Visibility(robot)
    manifold = StanceManifold(robot)
    quality = StanceQuality(robot, vis, ProposalConfig(), n_perturbations=64, seed=0)
    grasps = reachable_grasps(robot, args.grasps, np.random.default_rng(BENCH_SEED),
                              visibility=vis).grasps()
    unreach = unreachable_grasps(args.unreachable,
                                 np.random.default_rng(BENCH_SEED + 1)).grasps()
    truths = [ground_truth(manifold, g.matrix(), vis) for g in grasps]
    refs = [quality_reference(gt, quality, TOP_FRACTION) for gt in truths]
    print(f"ground truth and quality of {len(grasps)} grasps: "
          f"{time.perf_counter() - t_start:.1f} s", file=sys.stderr)
    models = args.models
    if models is None:
        models = sorted(str(p) for p in (ROOT / "models").glob("*.onnx"))

    def configs(**kw):
        return {n: StanceConfig(proposal=ProposalConfig(n_samples=n, top_k=args.top_k, **kw))
                for n in sweep}

    rows = []
    for m in models:
        facts = model_facts(m)
        rows.append(Row(f"{facts['family']} ({Path(m).name})",
                        configs(sampler="model", model_path=m), robot, vis, quality, facts))
    rows.append(Row("exact grid (no learning)", configs(sampler="grid"), robot, vis, quality,
                    {}))
    if args.rejection:
        rows.append(Row("rejection baseline",
                        configs(sampler="rejection", refinement="numerical"),
                        robot, vis, quality, {}))
    for row in rows:  # warm-up (first-call allocations, onnxruntime arenas)
        for n in sweep:
            for g in grasps[:2]:
                row.proposers[n].propose(g, rng=np.random.default_rng(0))
    speed = [machine_speed()]
    t = time.perf_counter()
    for i, g in enumerate(grasps):  # every (sampler, N) on grasp 1, then on grasp 2, ...
        if not len(truths[i]["q"]):
            continue
        for n in sweep:
            for row in rows:
                row.step(n, g, [BENCH_SEED, n, i], truths[i], refs[i])
    for row in rows:
        n = row.n_star(args.target) or max(sweep)
        for i, g in enumerate(unreach):
            row.unreachable(n, g, [BENCH_SEED, 10_000 + i])
    speed.append(machine_speed())
    print(f"{len(rows)} samplers x {len(sweep)} sample counts, interleaved: "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    report(rows, args, sweep, grasps, unreach, refs, speed)
    if args.json:
        out = {r.name: {"facts": r.facts, "n_star": r.n_star(args.target),
                        "false_success": r.false_success,
                        "per_n": {n: {k: r.stat(n, k) for k in r.data[n]} for n in sweep}}
               for r in rows}
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


def _fmt(v, spec):
    return "–" if v is None or not np.isfinite(v) else format(v, spec)


def report(rows, args, sweep, grasps, unreach, refs, speed):
    """Print the tables (markdown)."""
    N, small = args.samples, args.small
    best = np.array([r["best"] for r in refs])
    print(f"\n{len(grasps)} held-out reachable-visible grasps (seed {BENCH_SEED}), "
          f"{len(unreach)} unreachable; top-{args.top_k}; one thread; best exact quality "
          f"per grasp {np.nanmean(best):.2f} on average (quality = visibility + "
          "manipulability + limits + robustness, the ranking's terms)")
    print(f"machine speed: {speed[0]:.2f} / {speed[1]:.2f} us per small numpy call "
          "(before / after; lower is faster)\n")
    print(f"| family | gap (rad) | KL | modes | feasible | good | best-of-{small} | "
          f"best-of-{N} | N* (success@1 >= {100 * args.target:g} %) | success@1 at N* | "
          "false success | p50 / p99 ms at N* | top-1 quality at N* | returned at N* | "
          "size | params | training |")
    print("|---" * 17 + "|")
    for r in rows:
        ns = r.n_star(args.target)
        nn = ns or max(sweep)
        f = r.facts
        size = _fmt(f.get("bytes", float("nan")) / 1e6, ".3f") + " MB" if f else "–"
        params = _fmt(f.get("params", float("nan")) / 1e3, ".1f") + " k" if f else "–"
        train = _fmt(f.get("train_s", float("nan")), ".0f") + " s" if f else "–"
        print(f"| {r.name} | {r.stat(N, 'coverage_gap_rad'):.3f} | {r.stat(N, 'kl'):.2f} | "
              f"{r.stat(N, 'mode_recall'):.2f} | {r.stat(N, 'frac_feasible'):.3f} | "
              f"{r.stat(N, 'frac_good'):.3f} | {r.stat(small, 'best_of_n'):.3f} | "
              f"{r.stat(N, 'best_of_n'):.3f} | {ns if ns else f'> {max(sweep)}'} | "
              f"{100 * r.stat(nn, 'success'):.1f} % | {r.false_success.get(nn, 0)}/"
              f"{len(unreach)} | {r.stat(nn, 'latency_ms', np.median):.2f} / "
              f"{r.stat(nn, 'latency_ms', lambda v: np.percentile(v, 99)):.2f} | "
              f"{r.stat(nn, 'top1_quality'):.3f} | {r.stat(nn, 'returned'):.1f} | {size} | "
              f"{params} | {train} |")
    print(f"\nColumns at N = {N} unless named: gap, KL, modes = coverage of the verified "
          "stances against the exact truth (largest uncovered azimuth arc; KL over (branch, "
          "pan, lift) cells, lower = closer to uniform over the stance set's area; share of "
          f"its modes reached); feasible, good = "
          f"share of the N proposals that became verified stances / stances in the best "
          f"{100 * TOP_FRACTION:g} % of the grasp's stance set; best-of-N = best quality among "
          "them over the best exact stance's (mean over grasps).")
    stages = ("sample", "coarse_filter", "refine", "verify", "rank", "robustness", "total")
    print("\nmedian time per pipeline stage at N* (ms; timing_ms of the answers):\n")
    print("| family | N* | " + " | ".join(stages) + " |")
    print("|---" * (len(stages) + 2) + "|")
    for r in rows:
        nn = r.n_star(args.target) or max(sweep)
        print(f"| {r.name} | {nn} | " + " | ".join(
            _fmt(r.stat(nn, f"stage_{k}", np.median), ".2f") for k in stages) + " |")
    for title, key, fn, spec in (("success@1 (%)", "success", np.mean, ".1f"),
                                 ("p50 latency (ms)", "latency_ms", np.median, ".2f"),
                                 ("stances returned", "returned", np.mean, ".1f"),
                                 ("good (share of the N proposals)", "frac_good", np.mean, ".3f"),
                                 ("best-of-N quality / best exact", "best_of_n", np.mean, ".3f"),
                                 ("top-1 quality / best exact", "top1_quality", np.mean, ".3f"),
                                 ("coverage gap (rad)", "coverage_gap_rad", np.mean, ".3f"),
                                 ("KL to the truth", "kl", np.mean, ".2f")):
        print(f"\n{title} against N:\n")
        print("| family | " + " | ".join(f"N = {n}" for n in sweep) + " |")
        print("|---" * (len(sweep) + 1) + "|")
        for r in rows:
            scale = 100.0 if key == "success" else 1.0
            print(f"| {r.name} | " + " | ".join(
                _fmt(scale * r.stat(n, key, fn), spec) for n in sweep) + " |")


if __name__ == "__main__":
    main()
