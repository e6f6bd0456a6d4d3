"""The no-ROS command line: ``python -m reachability_ros <command>``.

Commands:
  propose        stances for one grasp: a ranked table, ``--json``, ``--plot FILE.png``
  propose-batch  JSONL in, JSONL out, the model loaded once
  train          the offline trainer (needs the ``train`` extra: torch)
  evaluate       evaluate an exported model
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Sequence

import numpy as np


def _seed(text: str) -> int:
    """argparse type: a non-negative integer seed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML config (default config/lekiwi.yaml)")
    p.add_argument("--model", default=None, help="ONNX model (overrides proposal.model_path)")
    p.add_argument("--sampler", default=None, choices=["auto", "model", "grid", "rejection"],
                   help="proposal sampler (overrides proposal.sampler)")
    p.add_argument("--samples", type=int, default=None, help="proposals per grasp")
    p.add_argument("--top-k", type=int, default=None, help="ranked stances returned")
    p.add_argument("--seed", type=_seed, default=None,
                   help="random seed (>= 0; default: proposal.seed of the config)")


def _build_proposer(args):
    from reachability_ros.config_io import load_stance_config, resolve_data_path
    from reachability_ros.core.pipeline import StanceProposer
    overrides = {}
    if args.model is not None:
        overrides["proposal.model_path"] = str(resolve_data_path(args.model)) if args.model else ""
    if args.sampler is not None:
        overrides["proposal.sampler"] = args.sampler
    if args.samples is not None:
        overrides["proposal.n_samples"] = args.samples
    if args.top_k is not None:
        overrides["proposal.top_k"] = args.top_k
    cfg = load_stance_config(args.config, overrides)
    if cfg.proposal.model_path:
        from dataclasses import replace
        path = str(resolve_data_path(cfg.proposal.model_path))
        cfg = replace(cfg, proposal=replace(cfg.proposal, model_path=path))
    return StanceProposer(cfg)


def _grasp_from_args(args):
    from reachability_ros.core.errors import InvalidRequest
    from reachability_ros.core.geometry import matrix_to_quat, rpy_to_matrix
    from reachability_ros.core.types import Grasp
    if (args.quat is None) == (args.rpy is None):
        raise InvalidRequest("give exactly one of --quat QX QY QZ QW or --rpy ROLL PITCH YAW")
    if args.quat is not None:
        quat = tuple(args.quat)
    else:
        rpy = np.radians(args.rpy) if args.degrees else np.asarray(args.rpy, dtype=float)
        if not np.all(np.isfinite(rpy)):
            raise InvalidRequest(f"--rpy has non-finite values: {args.rpy}")
        quat = tuple(matrix_to_quat(rpy_to_matrix(*rpy)))
    return Grasp(tuple(args.position), quat, args.frame_id)


def _print_table(result, out=sys.stdout) -> None:
    print(f"sampler: {result.sampler}", file=out)
    print("funnel: " + ", ".join(f"{k} {v}" for k, v in result.funnel.items()), file=out)
    print("timing (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timing_ms.items()),
          file=out)
    if not result.ok:
        print(f"NO STANCE: {result.reason}", file=out)
        return
    arm = [n.replace("arm_", "") for n in result.joint_names[3:]]
    head = (f"{'#':>2} {'x':>8} {'y':>8} {'yaw°':>7} " + " ".join(f"{a[:11]:>11}" for a in arm)
            + f" {'score':>6} {'robust':>6} {'view°':>6} {'pos_err':>8} {'ori_err°':>8}")
    print(head, file=out)
    for i, c in enumerate(result.candidates, start=1):
        m = c.metrics
        print(f"{i:>2} {c.q[0]:8.3f} {c.q[1]:8.3f} {math.degrees(c.q[2]):7.1f} "
              + " ".join(f"{math.degrees(v):10.1f}°" for v in c.q[3:])
              + f" {c.score:6.2f} {m['robustness']:6.2f} {math.degrees(m['angle_margin_rad']):6.1f}"
              f" {m['position_error_m']:8.1e} {math.degrees(m['orientation_error_rad']):8.1e}",
              file=out)
    print("robust: fraction of base poses off by the configured navigation error from which "
          "the arm alone still reaches the grasp within tolerance, visible; view°: angle "
          "between the target ray and the nearest image edge", file=out)
    print("score terms of #1: " + ", ".join(
        f"{k} {v:+.2f}" for k, v in result.candidates[0].terms.items()), file=out)


def cmd_propose(args) -> int:
    from reachability_ros.core.report import result_to_dict
    from reachability_ros.core.types import BasePose
    proposer = _build_proposer(args)
    grasp = _grasp_from_args(args)
    base = BasePose(*args.current_base) if args.current_base else None
    if base is not None and args.degrees:
        base = BasePose(base.x, base.y, math.radians(base.yaw))
    seed = proposer.config.proposal.seed if args.seed is None else args.seed
    result = proposer.propose(grasp, base, np.random.default_rng(seed))
    if args.json:
        print(json.dumps(result_to_dict(result), indent=2))
    else:
        _print_table(result)
    if args.plot:
        from reachability_ros.plotting import plot_result
        plot_result(result, proposer.robot, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0 if result.ok else 1


def _json_id(value, lineno: int):
    """The record id as JSON-safe data: a string, or an int; anything else becomes its str."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return f"line{lineno}" if value is None else str(value)


def _parse_line(line: str, lineno: int):
    from reachability_ros.core.errors import InvalidRequest
    from reachability_ros.core.types import Grasp
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"line {lineno}: not valid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise InvalidRequest(f"line {lineno}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(rec, dict):
        raise InvalidRequest(f"line {lineno}: expected a JSON object")
    gid = _json_id(rec.get("id"), lineno)
    values = {}
    for key, n in (("position", 3), ("orientation", 4)):
        v = rec.get(key)
        if not isinstance(v, list) or len(v) != n or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise InvalidRequest(f"line {lineno} (id {gid!r}): {key!r} must be a list of {n} "
                                 "numbers")
        try:
            values[key] = tuple(float(x) for x in v)
        except OverflowError:
            raise InvalidRequest(f"line {lineno} (id {gid!r}): {key!r} has a number too large "
                                 "for a float") from None
    return gid, Grasp(values["position"], values["orientation"], str(rec.get("frame_id", "")))


def cmd_propose_batch(args) -> int:
    from reachability_ros.core.errors import InvalidRequest, ReachabilityError
    from reachability_ros.core.report import result_to_dict
    proposer = _build_proposer(args)
    seed = proposer.config.proposal.seed if args.seed is None else args.seed
    n_ok = n_fail = n_bad = 0
    fin = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    fout = sys.stdout if args.output == "-" else open(args.output, "w")
    t0 = time.perf_counter()
    try:
        for lineno, raw in enumerate(fin, start=1):
            gid = f"line{lineno}"
            try:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidRequest(f"line {lineno}: not UTF-8 text") from None
                if not line.strip():
                    raise InvalidRequest(f"line {lineno}: empty line")
                try:
                    gid = _json_id(json.loads(line).get("id"), lineno)
                except Exception:  # reported by _parse_line below
                    pass
                gid, grasp = _parse_line(line, lineno)
                rng = np.random.default_rng([seed, lineno])
                rec = result_to_dict(proposer.propose(grasp, rng=rng))
                n_ok += rec["ok"]
                n_fail += not rec["ok"]
            except ReachabilityError as exc:
                rec = {"ok": False, "reason": str(exc), "sampler": proposer.sampler_name,
                       "request": None, "candidates": [], "funnel": {}, "timing_ms": {}}
                n_bad += 1
            try:
                text = json.dumps({"id": gid, **rec}, allow_nan=False)
            except ValueError as exc:  # a non-finite number: never write invalid JSON
                text = json.dumps({"id": str(gid), "ok": False, "reason": f"internal: {exc}",
                                   "sampler": proposer.sampler_name, "request": None,
                                   "candidates": [], "funnel": {}, "timing_ms": {}})
            fout.write(text + "\n")
            fout.flush()
    finally:
        if fin is not sys.stdin.buffer:
            fin.close()
        if fout is not sys.stdout:
            fout.close()
    print(f"{n_ok} ok, {n_fail} without a stance, {n_bad} malformed "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    ap = argparse.ArgumentParser(prog="python -m reachability_ros", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propose", help="stances for one grasp")
    p.add_argument("--position", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"),
                   help="grasp position of gripper_frame_link in the world (m)")
    p.add_argument("--quat", type=float, nargs=4, metavar=("QX", "QY", "QZ", "QW"),
                   help="grasp orientation as a unit quaternion")
    p.add_argument("--rpy", type=float, nargs=3, metavar=("ROLL", "PITCH", "YAW"),
                   help="grasp orientation as fixed-axis roll, pitch, yaw (rad, or deg with "
                   "--degrees); the tool's +z is the approach axis")
    p.add_argument("--degrees", action="store_true", help="angles in degrees")
    p.add_argument("--frame-id", default="map", help="name of the world frame")
    p.add_argument("--current-base", type=float, nargs=3, metavar=("X", "Y", "YAW"),
                   help="current base pose, for the travel/turn terms")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--plot", metavar="FILE.png", help="write a top-down picture")
    _common(p)
    p.set_defaults(func=cmd_propose)
    b = sub.add_parser("propose-batch", help="JSONL grasps in, JSONL results out")
    b.add_argument("--input", required=True, help="JSONL file of grasps ('-' = stdin)")
    b.add_argument("--output", required=True, help="JSONL results ('-' = stdout)")
    _common(b)
    b.set_defaults(func=cmd_propose_batch)
    for name in ("train", "evaluate", "export"):
        t = sub.add_parser(name, help=f"{name} (training extra)", add_help=False)
        t.add_argument("rest", nargs=argparse.REMAINDER)
        t.set_defaults(func=None, training_command=name)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 on a user error, no traceback)."""
    from reachability_ros.core.errors import ReachabilityError
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "evaluate", "export"):
        try:
            from reachability_ros.training.cli import main as training_main
        except ImportError as exc:
            print(f"error: the trainer needs torch (pip install -e '.[train]'): {exc}",
                  file=sys.stderr)
            return 2
        return training_main(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ReachabilityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
