"""Benchmark of stances in generated rooms: success, collisions, what the scene removes, speed.

Usage:
    python bench/bench_world.py [--houses 3] [--per-kind 20] [--size 20] [--resolution 0.05]

Each house (``reachability_ros.evaluation.rooms.make_house``: outer and inner walls,
three low tables of a slab on four legs, five pieces of floor clutter: 20 boxes; a
20 m x 20 m map at 5 cm, 400 x 400 cells) gets grasps of every kind of
``rooms.GRASP_KINDS`` (on table tops, at table edges, along walls, in corners, in the
open), each a grasp reachable and visible in an empty world moved there. For each
grasp, with the service's default config (``config/lekiwi.yaml``):

* the ground truth with the scene (``evaluation/scene_truth.py``): the exact stance grid
  (64 x 64 per branch) filtered by joint limits, the camera's view and the scene checks;
* success@1: the top stance is valid in the scene, on the grasps whose ground truth is
  non-empty. Valid is judged independently of the pipeline: Pinocchio FK of the URDF
  (<= 1 mm, <= 0.5 deg), limits, visibility, and points sampled on the collision shapes
  as the URDF writes them (Pinocchio's placements) against the boxes and the map's
  cells: no point closer than the paddings (``scene_truth.box_clearance``,
  ``cell_clearance``), nor the camera-to-gripper segment;
* collisions returned: every returned stance (not only the top) through the same
  independent check (must be 0);
* the fraction of the empty-world ground truth that the scene removes;
* latency p50/p99 (ms, end to end in ``propose``, one thread), the scene pipeline and
  the empty-world pipeline interleaved grasp by grasp in the same run.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import verify_top  # noqa: E402

from reachability_ros.config_io import load_stance_config, resolve_data_path  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.core.robot import WholeBodyModel  # noqa: E402
from reachability_ros.evaluation.grasps import reachable_grasps  # noqa: E402
from reachability_ros.evaluation.rooms import GRASP_KINDS, make_house, scene_grasps  # noqa: E402
from reachability_ros.evaluation.scene_truth import (box_clearance, cell_clearance,  # noqa: E402
                                                     disc_points, scene_ground_truth,
                                                     shape_points)

SEED = 4242


def independent_violations(proposer, house, q: np.ndarray) -> list[str]:
    """What an independent check finds wrong with one stance in a house ([] = valid)."""
    robot, wc = proposer.robot, proposer.config.world
    out = []
    shapes = shape_points(robot, q, 150, np.random.default_rng(0))
    for link, _, pts in shapes:
        d = box_clearance(pts, house.boxes).min()
        if d < wc.box_padding_m - 1e-9:
            out.append(f"{link} {d * 1e3:.1f} mm from a box")
    radius = proposer.scene.footprint_outer_m
    base_points = [p[:, :2] for _, on_base, p in shapes if on_base]
    floor = np.vstack([disc_points(q[0], q[1], radius)] + base_points)
    d = cell_clearance(floor, house.grid, wc.cost_threshold, wc.unknown_is_blocked, 0.1).min()
    if d < wc.footprint_padding_m - 1e-9:
        out.append(f"footprint {d * 1e3:.1f} mm from a blocked cell")
    cam, tool = robot.config.camera.frame, robot.config.tool_frame
    a = robot.fk_pinocchio(q[None], cam)[0, :3, 3]
    b = robot.fk_pinocchio(q[None], tool)[0, :3, 3]
    seg = a + np.linspace(0.0, 1.0, 400)[:, None] * (b - a)
    d = box_clearance(seg, house.boxes).min()
    if d < wc.occlusion_padding_m - 1e-9:
        out.append(f"line of sight {d * 1e3:.1f} mm from a box")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--houses", type=int, default=3)
    ap.add_argument("--per-kind", type=int, default=20, help="grasps per kind and house")
    ap.add_argument("--size", type=float, default=20.0, help="house side (m)")
    ap.add_argument("--resolution", type=float, default=0.05, help="map cell (m)")
    args = ap.parse_args(argv)
    cfg = load_stance_config(None)
    cfg = replace(cfg, proposal=replace(cfg.proposal, model_path=str(
        resolve_data_path(cfg.proposal.model_path)) if cfg.proposal.model_path else ""))
    robot = WholeBodyModel(cfg.robot)
    proposer = StanceProposer(cfg, robot)  # no world of its own: the empty-world pipeline
    pool = reachable_grasps(robot, 4000, np.random.default_rng(SEED)).grasps()
    rows = {k: {"n": 0, "truth": 0, "success": 0, "found_no_truth": 0, "removed": [],
                "fallback": 0, "invalid": 0, "lat": []} for k in GRASP_KINDS}
    lat_scene, lat_empty, invalid, returned, misses = [], [], [], 0, []
    build_ms = []
    t_run = time.perf_counter()
    for h in range(args.houses):
        rng = np.random.default_rng([SEED, h])
        house = make_house(rng, args.size, args.resolution)
        t = time.perf_counter()
        world = proposer.scene.prepare(house.grid, house.boxes)
        build_ms.append((time.perf_counter() - t) * 1e3)
        for kind in GRASP_KINDS:
            grasps = scene_grasps(house, pool, kind, args.per_kind, rng)
            for i, g in enumerate(grasps):
                seed = [SEED, h, i]
                for _ in range(2):  # warm, then measured; empty and scene interleaved
                    t = time.perf_counter()
                    proposer.propose(g, rng=np.random.default_rng(seed))
                    te = (time.perf_counter() - t) * 1e3
                    t = time.perf_counter()
                    r = proposer.propose(g, rng=np.random.default_rng(seed), world=world)
                    ts = (time.perf_counter() - t) * 1e3
                lat_empty.append(te)
                lat_scene.append(ts)
                truth, ok = scene_ground_truth(proposer, g.matrix(), world)
                row = rows[kind]
                row["lat"].append(ts)
                row["n"] += 1
                if len(truth["q"]):
                    row["removed"].append(1.0 - ok.mean())
                row["fallback"] += int(r.funnel.get("fallback_proposed", 0) > 0)
                top_ok = False
                for rank, c in enumerate(r.candidates):
                    returned += 1
                    bad = independent_violations(proposer, house, c.q)
                    if bad:
                        row["invalid"] += 1
                        invalid.append(f"house {h} {kind} #{i} rank {rank + 1}: "
                                       + "; ".join(bad))
                    elif rank == 0:
                        top_ok = verify_top(robot, proposer.visibility, r, g)[0]
                if ok.any():
                    row["truth"] += 1
                    row["success"] += int(top_ok)
                    if not top_ok:
                        misses.append(f"house {h} {kind} #{i}: the truth has {int(ok.sum())} "
                                      f"stances; {r.reason or 'the top stance is not valid'}")
                elif r.ok:
                    row["found_no_truth"] += 1
    print(f"{args.houses} houses of {args.size:g} m at {args.resolution:g} m "
          f"({house.grid.shape[1]} x {house.grid.shape[0]} cells), {len(house.boxes)} boxes "
          f"each; {args.per_kind} grasps per kind and house; default config "
          f"({Path(cfg.proposal.model_path).name or cfg.proposal.sampler}, "
          f"N = {cfg.proposal.n_samples}); one thread; {time.perf_counter() - t_run:.0f} s\n")
    print("| grasps | n | non-empty truth | success@1 | found, truth empty | removed by the "
          "scene (mean) | collisions returned | fallback runs | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tot = {"n": 0, "truth": 0, "success": 0, "found_no_truth": 0, "fallback": 0, "invalid": 0}
    removed_all = []
    for kind, row in rows.items():
        for k in tot:
            tot[k] += row[k]
        removed_all += row["removed"]
        succ = f"{100 * row['success'] / row['truth']:.1f} %" if row["truth"] else "-"
        rem = f"{100 * np.mean(row['removed']):.0f} %" if row["removed"] else "-"
        print(f"| {kind} | {row['n']} | {row['truth']} | {succ} | {row['found_no_truth']} | "
              f"{rem} | {row['invalid']} | {row['fallback']} | "
              f"{np.percentile(row['lat'], 50):.2f} | {np.percentile(row['lat'], 99):.2f} |")
    succ = f"{100 * tot['success'] / tot['truth']:.1f} %" if tot["truth"] else "-"
    print(f"| all | {tot['n']} | {tot['truth']} | {succ} | {tot['found_no_truth']} | "
          f"{100 * np.mean(removed_all):.0f} % | {tot['invalid']} | {tot['fallback']} | "
          f"{np.percentile(lat_scene, 50):.2f} | {np.percentile(lat_scene, 99):.2f} |")
    for line in misses:
        print("  missed: " + line)
    print(f"\nreturned stances: {returned}; in collision or occluded by the independent "
          f"check: {len(invalid)}")
    for line in invalid[:20]:
        print("  " + line)
    ls, le = np.array(lat_scene), np.array(lat_empty)
    print("\n| pipeline | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, lat in (("with the scene", ls), ("empty world", le)):
        print(f"| {name} | {np.percentile(lat, 50):.2f} | {np.percentile(lat, 95):.2f} | "
              f"{np.percentile(lat, 99):.2f} | {lat.max():.2f} |")
    print(f"\nper-map work (the grid's distance field, once per map): "
          f"{np.median(build_ms):.0f} ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
