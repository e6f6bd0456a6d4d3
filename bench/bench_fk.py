"""Benchmark: batched FK + visibility against a per-configuration Pinocchio loop.

Single-threaded (the BLAS/OpenMP thread counts are pinned to 1 before numpy is
imported). For N random whole-body configurations of the LeKiwi it times, in
one run and on the same configurations:

* batched: ``WholeBodyModel.fk`` (tool + front camera) and ``Visibility.check``
  (frustum + self-occlusion), all N at once;
* per configuration: ``pin.framesForwardKinematics`` for each configuration
  (tool and camera poses read from ``data.oMf``), alone and followed by the
  same visibility maths for that one configuration (``Visibility.check`` of a
  single configuration, target = the tool frame origin).

The paths are timed in interleaved rounds so that they all see the same load.
It prints a markdown table of medians (and minima) over the repeats with the
speed-up of the batched path, then the time of FK + visibility for
``--n-large`` configurations (random ones, and ones whose tool is in the
camera's frustum, the worst case for the occlusion test).

Usage::

    python bench/bench_fk.py                 # N = 1024, 4096; ~10 s
    python bench/bench_fk.py --repeats 100 --loop-repeats 10
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pinocchio as pin  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reachability_ros.core.robot import WholeBodyModel  # noqa: E402
from reachability_ros.core.visibility import Visibility  # noqa: E402


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 2) -> np.ndarray:
    """Wall times (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def in_frustum_configurations(robot: WholeBodyModel, vis: Visibility, n: int,
                              rng: np.random.Generator) -> np.ndarray:
    """``n`` random configurations whose tool is inside the camera frustum."""
    found = []
    count = 0
    while count < n:
        q = robot.random_configurations(20 * n, rng)
        q = q[vis.check(q).in_frustum]
        found.append(q)
        count += len(q)
    return np.concatenate(found)[:n]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="configurations (default 1024)")
    ap.add_argument("--n-large", type=int, default=4096, help="second size (default 4096)")
    ap.add_argument("--repeats", type=int, default=30, help="repeats of the batched calls")
    ap.add_argument("--loop-repeats", type=int, default=5,
                    help="repeats of the per-configuration FK + visibility loop (rounds)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    robot = WholeBodyModel()
    vis = Visibility(robot)
    rng = np.random.default_rng(args.seed)
    q = robot.random_configurations(args.n, rng)
    tool, cam = robot.config.tool_frame, robot.config.camera.frame
    model, data = robot.model, robot.model.createData()
    fid_tool, fid_cam = robot.frame_id(tool), robot.frame_id(cam)

    def batched_fk():
        return robot.fk(q, (tool, cam))

    def batched_vis():
        return vis.check(q)

    def batched_all():
        robot.fk(q, (tool, cam))
        vis.check(q)

    T_tool = np.empty((args.n, 4, 4))
    T_cam = np.empty((args.n, 4, 4))

    def loop_fk():
        for i in range(args.n):
            pin.framesForwardKinematics(model, data, q[i])
            T_tool[i] = data.oMf[fid_tool].homogeneous
            T_cam[i] = data.oMf[fid_cam].homogeneous

    def loop_all():
        for i in range(args.n):
            pin.framesForwardKinematics(model, data, q[i])
            T_tool[i] = data.oMf[fid_tool].homogeneous
            T_cam[i] = data.oMf[fid_cam].homogeneous
            vis.check(q[i:i + 1])

    # correctness of what is timed: batched FK == Pinocchio, batched vis == per-config vis
    loop_fk()
    fk = batched_fk()
    err = max(np.abs(fk[tool] - T_tool).max(), np.abs(fk[cam] - T_cam).max())
    res = batched_vis()
    sub = slice(0, min(args.n, 256))
    per = [vis.check(q[i:i + 1]) for i in range(sub.stop)]
    same = all(bool(r.visible[0] == res.visible[i]) for i, r in enumerate(per))

    # interleaved rounds, so that every path sees the same machine load
    paths = {
        "batched FK (tool + camera)": (batched_fk, args.repeats),
        "batched visibility": (batched_vis, args.repeats),
        "batched FK + visibility": (batched_all, args.repeats),
        "Pinocchio loop: FK": (loop_fk, 3 * args.loop_repeats),
        "Pinocchio loop: FK + visibility": (loop_all, args.loop_repeats),
    }
    rounds = args.loop_repeats
    chunks = {name: [] for name in paths}
    for _ in range(rounds):
        for name, (fn, reps) in paths.items():
            chunks[name].append(timeit(fn, max(1, reps // rounds), warmup=1))
    times = {name: np.concatenate(c) for name, c in chunks.items()}
    ref = times["batched FK + visibility"]
    ref_fk = times["batched FK (tool + camera)"]

    print(f"# bench_fk: N = {args.n}, single thread, {platform.processor() or platform.machine()},"
          f" numpy {np.__version__}, pinocchio {pin.__version__}")
    print(f"load average at start of report: {os.getloadavg()[0]:.2f} "
          "(timings on a shared machine: compare within one run)")
    print(f"batched FK vs Pinocchio: max |dT| = {err:.2e}; visible fraction "
          f"{res.visible.mean():.3f}, in frustum {res.in_frustum.mean():.3f}; "
          f"per-config visibility agrees on {sub.stop} configs: {same}")
    print()
    print("| path | repeats | median ms | min ms | us / config | batched speed-up "
          "(medians; minima) |")
    print("|---|---|---|---|---|---|")
    for name, t in times.items():
        med = np.median(t)
        base = {"Pinocchio loop: FK": (ref_fk, "batched FK"),
                "Pinocchio loop: FK + visibility": (ref, "batched FK + visibility")}.get(name)
        ratio = "" if base is None else (
            f"{med / np.median(base[0]):.0f}x; {t.min() / base[0].min():.0f}x (vs {base[1]})")
        print(f"| {name} | {len(t)} | {1e3 * med:.3f} | {1e3 * t.min():.3f} | "
              f"{1e6 * med / args.n:.2f} | {ratio} |")

    # the large batch: random, and every tool in the frustum (occlusion everywhere)
    n2 = args.n_large
    q_rand = robot.random_configurations(n2, np.random.default_rng(args.seed + 1))
    q_view = in_frustum_configurations(robot, vis, n2, np.random.default_rng(args.seed + 2))
    print()
    print(f"| N = {n2}: FK (tool + camera) + visibility | median ms | min ms | us / config |")
    print("|---|---|---|---|")
    for name, qq in (("random configurations", q_rand),
                     ("tool inside the frustum (all occlusion tests run)", q_view)):
        t, tv = [], []
        for _ in range(args.repeats):  # interleaved
            t.append(timeit(lambda: (robot.fk(qq, (tool, cam)), vis.check(qq)), 1, 0))
            tv.append(timeit(lambda: vis.check(qq), 1, 0))
        t, tv = np.concatenate(t), np.concatenate(tv)
        print(f"| {name} | {1e3 * np.median(t):.3f} | {1e3 * t.min():.3f} | "
              f"{1e6 * np.median(t) / n2:.2f} |")
        print(f"| ... visibility alone (it runs its own FK) | {1e3 * np.median(tv):.3f} | "
              f"{1e3 * tv.min():.3f} | {1e6 * np.median(tv) / n2:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
