"""Dump, or compare against a dump, the answers to a fixed set of requests (every sampler).

Usage:
    python bench/golden_requests.py --out before.jsonl            # dump
    python bench/golden_requests.py --compare before.jsonl        # dump again and compare

A refactor that must not change behaviour is checked by dumping before it and comparing
after it. Each line holds one (sampler, request) answer: the JSON report
(``result_to_dict``: candidates, scores, terms, metrics, funnel), the keys of ``timing_ms``
(their values are machine noise), the per-proposal outcome labels and the verified stances
(``feasible_q``). ``--compare`` reports the largest absolute difference of any number and
fails (exit 1) on a different structure, a different label or string, or a number off by
more than ``--atol`` (default 0: identical).

Requests: 30 held-out reachable grasps (half of them with a current base pose), 6 beyond
reach or out of view, for the default config (manifold flow, N = 256), every other shipped
model (N = 1,024), the exact grid (N = 1,024) and the rejection baseline (N = 256, first
10 requests only: it is slow).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reachability_ros.config_io import load_stance_config, resolve_data_path  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.core.report import result_to_dict  # noqa: E402
from reachability_ros.core.robot import WholeBodyModel  # noqa: E402
from reachability_ros.core.types import BasePose  # noqa: E402
from reachability_ros.evaluation.grasps import reachable_grasps, unreachable_grasps  # noqa: E402

SEED = 777


def setups(robot):
    """(name, config, number of requests) for every sampler."""
    default = load_stance_config(None)
    dp = default.proposal
    default = replace(default, proposal=replace(
        dp, model_path=str(resolve_data_path(dp.model_path)) if dp.model_path else ""))
    out = [("default", default, None)]
    base = replace(default, proposal=replace(default.proposal, n_samples=1024))
    for m in sorted((ROOT / "models").glob("*.onnx")):
        if Path(m).name != Path(dp.model_path).name:
            out.append((f"model:{m.name}", replace(base, proposal=replace(
                base.proposal, sampler="model", model_path=str(m))), None))
    out.append(("grid", replace(base, proposal=replace(base.proposal, sampler="grid",
                                                       model_path="")), None))
    out.append(("rejection", replace(default, proposal=replace(
        default.proposal, sampler="rejection", model_path="", refinement="numerical")), 10))
    return out


def answers():
    """Yield one record per (sampler, request)."""
    robot = WholeBodyModel()
    grasps = (reachable_grasps(robot, 30, np.random.default_rng(SEED))
              + unreachable_grasps(6, np.random.default_rng(SEED + 1))).grasps()
    rng = np.random.default_rng(SEED)
    starts = [BasePose(*rng.uniform(-2, 2, 2), rng.uniform(-math.pi, math.pi))
              if i % 2 else None for i in range(len(grasps))]
    for name, cfg, limit in setups(robot):
        proposer = StanceProposer(cfg, robot)
        for i, (g, s) in enumerate(zip(grasps, starts)):
            if limit is not None and i >= limit:
                break
            r = proposer.propose(g, s, np.random.default_rng([SEED, i]))
            d = result_to_dict(r)
            d["timing_ms"] = sorted(d["timing_ms"])
            d["sampler"] = d["sampler"].replace(str(ROOT), "<repo>")  # any checkout
            d["outcomes"] = [str(o) for o in r.samples_outcome] if (
                r.samples_outcome is not None) else None
            d["feasible_q"] = r.feasible_q.tolist() if r.feasible_q is not None else None
            yield {"sampler": name, "request": i, "answer": d}


def diff(a, b, path, out):
    """Append (path, |a - b|) for numbers, (path, message) for anything else that differs."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        if a != b:
            out.append((path, f"{a!r} != {b!r}"))
    elif isinstance(a, (int, float)):
        if not isinstance(b, (int, float)):
            out.append((path, f"{a!r} != {b!r}"))
        else:
            out.append((path, abs(a - b)))
    elif isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            out.append((path, f"keys {list(a)} != {list(b) if isinstance(b, dict) else b!r}"))
        else:
            for k in a:
                diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            out.append((path, "list lengths differ"))
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                diff(x, y, f"{path}[{i}]", out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="write the dump (JSONL)")
    g.add_argument("--compare", help="compare with this dump")
    ap.add_argument("--atol", type=float, default=0.0, help="accepted absolute difference")
    ap.add_argument("--ignore", nargs="*", default=[],
                    help="keys of a candidate or the report added since the dump (not compared)")
    args = ap.parse_args(argv)
    records = list(answers())
    if args.out:
        with open(args.out, "w") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
        print(f"{len(records)} answers written to {args.out}")
        return 0
    with open(args.compare) as fh:
        before = [json.loads(line) for line in fh]
    if len(before) != len(records):
        print(f"different number of answers: {len(before)} before, {len(records)} now")
        return 1
    worst, bad = 0.0, []
    for old, new in zip(before, records):
        for key in args.ignore:
            new["answer"].pop(key, None)
            for c in new["answer"]["candidates"]:
                c.pop(key, None)
        found = []
        diff(old, new, f"{new['sampler']}#{new['request']}", found)
        for path, d in found:
            if isinstance(d, str):
                bad.append(f"{path}: {d}")
            else:
                worst = max(worst, d)
                if d > args.atol:
                    bad.append(f"{path}: off by {d:.3g}")
    print(f"{len(records)} answers compared; largest numeric difference {worst:.3g}")
    for line in bad[:20]:
        print("  " + line)
    if bad:
        print(f"{len(bad)} differences beyond atol={args.atol}")
        return 1
    print("identical" if worst == 0 else f"equal within {args.atol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
