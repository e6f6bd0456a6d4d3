"""The no-ROS command line: ``python -m reachability_ros <command>``.

Commands:
  propose        stances for one grasp: a ranked table, --json, --plot FILE.png
  propose-batch  JSONL grasps in, JSONL results out, the model loaded once
  train, dataset, evaluate, export, parity, toy-table
                 the offline trainer (needs torch: bash scripts/test.sh installs it);
                 python -m reachability_ros train --help

Exit codes:
  propose        0 a stance was found, 1 no stance (the reason says why),
                 2 bad input: arguments, config, model, files or the grasp itself
  propose-batch  0 once every input line has its output line (malformed lines get
                 "ok": false), 2 when the files or the config fail (the output file
                 is then left as it was)
  both           130 interrupted (Ctrl-C), 141 the reader of stdout went away (a pipe
                 closed early), 3 internal error (a bug: please report it;
                 REACHABILITY_ROS_DEBUG=1 shows the traceback)

Grasp freedom: ``propose --symmetric`` (the grasp flipped by 180 degrees about the
approach axis, the tool's +z, is as good) and ``--free-roll`` (any rotation about it is).
A batch line may add ``"symmetric": true``, ``"free_roll": true`` and
``"alternatives": [{"position": [...], "orientation": [...]}, ...]`` (other grasps,
any of which will do; each may carry its own ``symmetric`` / ``free_roll``; at most
1,000 per line); every candidate says which grasp it serves (``grasp_index``: 0 the
main grasp, i ``alternatives[i - 1]``) and the tool pose it reaches (``tool_pose``).

Files: a relative --config, --model or --plot is the user's: looked up in the working
directory first, then in the package's share directory (config and model). The config
and model actually loaded are printed on stderr. --map (a Nav2 map_server YAML file and
its image) and --obstacles (a YAML list of boxes) are the world the stances must clear,
in the grasps' frame (reachability_ros/world_io.py). Output files (--output, --plot) are
written to a temporary file and renamed into place: an interrupted run never leaves a
half-written file, and --output may not name the --input file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from reachability_ros.core.errors import ConfigError, InvalidRequest, ReachabilityError
from reachability_ros.batch import answer_lines, dumps_record, error_record, result_record
from reachability_ros.core.requests import MAX_ABS_COORDINATE_M
from reachability_ros.training import COMMANDS as TRAINING_COMMANDS  # no torch import

EXIT_OK, EXIT_NO_STANCE, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that went away


class UserError(Exception):
    """A problem with what the user gave; printed as one line, exit code 2.

    Attributes:
        kind: the ``error`` field of the JSON answer: ``usage``, ``invalid_request``,
            ``config`` or ``file``.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (for ``--json``) instead of exiting."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        raise UserError(f"{message} (see {self.prog} --help)", "usage")


def _seed(text: str) -> int:
    """argparse type: a non-negative integer seed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {value}")
    return value


# ------------------------------------------------------------------ inputs
def _grasp_from_args(args):
    from reachability_ros.core.geometry import matrix_to_quat, rpy_to_matrix
    from reachability_ros.core.types import Grasp
    if (args.quat is None) == (args.rpy is None):
        raise InvalidRequest("give exactly one of --quat QX QY QZ QW or --rpy ROLL PITCH YAW")
    position = tuple(float(v) for v in args.position)
    if args.quat is not None:
        quat = tuple(float(v) for v in args.quat)
    else:
        if not all(math.isfinite(v) for v in args.rpy):
            raise InvalidRequest(f"--rpy has non-finite values: {args.rpy}")
        rpy = [math.radians(v) if args.degrees else float(v) for v in args.rpy]
        rpy = [math.remainder(v, 2.0 * math.pi) for v in rpy]  # huge angles: exact, no loss
        quat = tuple(float(v) for v in matrix_to_quat(rpy_to_matrix(*rpy)))
    return Grasp(position, quat, args.frame_id, symmetric=bool(args.symmetric),
                 free_roll=bool(args.free_roll))


def _base_from_args(args):
    from reachability_ros.core.types import BasePose
    if not args.current_base:
        return None
    x, y, yaw = (float(v) for v in args.current_base)
    if not all(math.isfinite(v) for v in (x, y, yaw)):
        raise InvalidRequest(f"--current-base has non-finite values: {args.current_base}")
    if max(abs(x), abs(y)) > MAX_ABS_COORDINATE_M:
        raise InvalidRequest(f"--current-base ({x:g}, {y:g}) is more than 1,000 km from the "
                             "origin")
    yaw = math.remainder(math.radians(yaw) if args.degrees else yaw, 2.0 * math.pi)
    return BasePose(x, y, yaw)


def _check_plot_path(path: str) -> None:
    """Refuse a plot file matplotlib cannot write, or a place it cannot go, before any work."""
    from reachability_ros.plotting import plot_formats
    formats = plot_formats()
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in formats:
        raise UserError(f"--plot {path!r}: use one of the extensions "
                        f"{', '.join('.' + f for f in sorted(formats))}", "usage")
    p = Path(os.path.realpath(path))
    if p.is_dir():
        raise UserError(f"--plot {path!r} is a directory", "file")
    if not p.parent.is_dir():
        raise UserError(f"--plot {path!r}: directory {str(p.parent)!r} does not exist", "file")
    if not os.access(p.parent, os.W_OK):
        raise UserError(f"--plot {path!r}: directory {str(p.parent)!r} is not writable", "file")


# ------------------------------------------------------------------ the proposer
def _build_proposer(args):
    """Load the config (and the model) the user named, build the proposer, say what loaded."""
    from dataclasses import replace

    from reachability_ros.config_io import DEFAULT_CONFIG, load_stance_config
    from reachability_ros.core.paths import resolve_data_path
    from reachability_ros.core.pipeline import StanceProposer
    config_path = resolve_data_path(args.config or DEFAULT_CONFIG)
    overrides: dict[str, Any] = {}
    if args.model is not None:
        overrides["proposal.model_path"] = args.model
    if args.sampler is not None:
        overrides["proposal.sampler"] = args.sampler
    if args.samples is not None:
        overrides["proposal.n_samples"] = args.samples
    if args.top_k is not None:
        overrides["proposal.top_k"] = args.top_k
    cfg = load_stance_config(config_path, overrides)
    if args.camera_info:
        from reachability_ros.camera_info import with_camera_file
        cfg = with_camera_file(cfg, args.camera_info)
    model = cfg.proposal.model_path
    if model:
        found = resolve_data_path(model)
        uses_model = cfg.proposal.sampler in ("auto", "model")
        if uses_model and not found.is_file():
            where = ("--model" if args.model is not None
                     else f"proposal.model_path of {config_path}")
            raise UserError(f"model file {model!r} ({where}) not found: looked in the working "
                            "directory, then in the package's share directory", "config")
        cfg = replace(cfg, proposal=replace(cfg.proposal, model_path=str(found)))
    try:
        proposer = StanceProposer(cfg)
    except ReachabilityError:
        raise
    except Exception as exc:  # a third-party loader (URDF, ONNX) failing on a user's file
        raise UserError(f"cannot build the stance proposer from {config_path}: "
                        f"{type(exc).__name__}: {exc}", "config") from None
    print(f"config: {config_path}", file=sys.stderr)
    if args.camera_info:
        fx, fy, cx, cy = cfg.robot.camera.intrinsics()
        print(f"camera: {args.camera_info} ({cfg.robot.camera.width}x"
              f"{cfg.robot.camera.height}, fx {fx:g}, fy {fy:g}, cx {cx:g}, cy {cy:g})",
              file=sys.stderr)
    if proposer.sampler_name.startswith("model:"):
        print(f"model: {cfg.proposal.model_path}", file=sys.stderr)
    else:
        print(f"model: none (sampler {proposer.sampler_name})", file=sys.stderr)
    _load_world(args, proposer)
    return proposer


def _load_world(args, proposer) -> None:
    """Read --map and --obstacles into the proposer's world; say what was loaded."""
    if not (getattr(args, "map", None) or getattr(args, "obstacles", None)):
        return
    from reachability_ros.world_io import load_map, load_obstacles
    # both resolve a relative path like --config (core/paths.resolve_data_path), and name
    # the file as the user typed it in their errors
    grid = load_map(args.map) if args.map else None
    boxes = load_obstacles(args.obstacles) if args.obstacles else None
    proposer.set_world(grid, boxes)
    if grid is not None:
        h, w = grid.shape
        print(f"map: {args.map} ({w} x {h} cells of {grid.resolution_m:g} m)", file=sys.stderr)
    if boxes is not None:
        print(f"obstacles: {args.obstacles} ({len(boxes)} boxes)", file=sys.stderr)


def _print_table(result, base_frame: str, out=sys.stdout) -> None:
    frame = result.grasp.frame_id if result.grasp is not None and result.grasp.frame_id \
        else "the world frame"
    print(f"sampler: {result.sampler}", file=out)
    print("funnel: " + ", ".join(f"{k} {v}" for k, v in result.funnel.items()), file=out)
    print("timing (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timing_ms.items()),
          file=out)
    if not result.ok:
        print(f"NO STANCE: {result.reason}", file=out)
        return
    print(f"x, y, yaw: the pose of {base_frame} in {frame}; then the arm joints", file=out)
    arm = [n.replace("arm_", "") for n in result.joint_names[3:]]
    turned = result.grasp is not None and not result.grasp.fixed
    head = (f"{'#':>2} {'x':>8} {'y':>8} {'yaw°':>7} " + " ".join(f"{a[:11]:>11}" for a in arm)
            + f" {'score':>6} {'robust':>6} {'view°':>6} {'pos_err':>8} {'ori_err°':>8}"
            + (f" {'turn°':>6}" if turned else ""))
    print(head, file=out)
    for i, c in enumerate(result.candidates, start=1):
        m = c.metrics
        extra = ""
        if turned:  # the tool pose reached, turned about the approach from the request
            from reachability_ros.core.freedom import roll_between
            turn = roll_between(result.grasp.orientation, c.tool_pose.orientation)
            extra = f" {math.degrees(turn):6.1f}"
        print(f"{i:>2} {c.q[0]:8.3f} {c.q[1]:8.3f} {math.degrees(c.q[2]):7.1f} "
              + " ".join(f"{math.degrees(v):10.1f}°" for v in c.q[3:])
              + f" {c.score:6.2f} {m['robustness']:6.2f}"
              f" {math.degrees(m['angle_margin_rad']):6.1f}"
              f" {m['position_error_m']:8.1e} {math.degrees(m['orientation_error_rad']):8.1e}"
              + extra, file=out)
    print("robust: fraction of base poses off by the configured navigation error from which "
          "the arm alone still reaches the grasp within tolerance, visible; view°: angle "
          "between the target ray and the nearest image edge"
          + ("; turn°: the tool pose reached, turned about the approach axis from the "
             "request" if turned else ""), file=out)
    print("score terms of #1: " + ", ".join(
        f"{k} {v:+.2f}" for k, v in result.candidates[0].terms.items()), file=out)


# ------------------------------------------------------------------ commands
def cmd_propose(args) -> int:
    """``propose``: one grasp; exit 0 with a stance, 1 without."""
    import numpy as np
    if args.plot:
        _check_plot_path(args.plot)
    proposer = _build_proposer(args)
    args._sampler = proposer.sampler_name
    grasp = _grasp_from_args(args)
    base = _base_from_args(args)
    seed = proposer.config.proposal.seed if args.seed is None else args.seed
    result = proposer.propose(grasp, base, np.random.default_rng(seed))
    if args.plot:  # before the answer: a plot that fails is the one answer (exit 2)
        from reachability_ros.plotting import plot_result
        try:
            plot_result(result, proposer.robot, args.plot, current_base=base,
                        footprint_radius_m=proposer.scene.footprint_outer_m,
                        world=proposer.world, footprint_polygon=proposer.scene.polygon)
        except OSError as exc:
            raise UserError(f"cannot write --plot {args.plot!r}: {exc.strerror or exc}",
                            "file") from None
    if args.json:
        print(dumps_record(result_record(result), indent=2))
    else:
        _print_table(result, proposer.robot.config.base_frame)
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK if result.ok else EXIT_NO_STANCE


def _open_batch_files(args):
    """Check --input and --output before any work; return the input's binary stream."""
    if args.output != "-" and args.input != "-":
        try:
            same = os.path.samefile(args.input, args.output)
        except OSError:  # one of them does not exist (yet)
            same = False
        if same:
            raise UserError(f"--output {args.output!r} is the --input file: refusing to "
                            "overwrite the grasps with the results", "file")
    if args.output != "-":
        out = Path(os.path.realpath(args.output))
        if out.is_dir():
            raise UserError(f"--output {args.output!r} is a directory", "file")
        if not out.parent.is_dir():
            raise UserError(f"--output {args.output!r}: directory {str(out.parent)!r} does "
                            "not exist", "file")
    if args.input == "-":
        return sys.stdin.buffer
    try:
        return open(args.input, "rb")
    except OSError as exc:
        raise UserError(f"cannot read --input {args.input!r}: {exc.strerror}", "file") from None


def cmd_propose_batch(args) -> int:
    """``propose-batch``: JSONL in, JSONL out; exit 0 unless the files or the config fail."""
    from reachability_ros.atomic import AtomicFile, is_regular_or_new
    fin = _open_batch_files(args)
    try:
        proposer = _build_proposer(args)
        seed = proposer.config.proposal.seed if args.seed is None else args.seed
        t0 = time.perf_counter()
        if args.output == "-":
            counts = answer_lines(proposer, fin, sys.stdout, seed)
        elif not is_regular_or_new(args.output):  # /dev/stdout, a FIFO: write in place
            with open(args.output, "w") as fout:
                counts = answer_lines(proposer, fin, fout, seed)
        else:
            try:
                target = AtomicFile(args.output)
            except OSError as exc:
                raise UserError(f"cannot write --output {args.output!r}: {exc.strerror}",
                                "file") from None
            with target, open(target.tmp_path, "w") as fout:
                counts = answer_lines(proposer, fin, fout, seed)
    finally:
        if fin is not sys.stdin.buffer:
            fin.close()
    n_ok, n_fail, n_bad, n_internal = counts
    extra = f", {n_internal} internal errors (a bug: please report)" if n_internal else ""
    print(f"{n_ok} ok, {n_fail} without a stance, {n_bad} malformed{extra} "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return EXIT_OK


# ------------------------------------------------------------------ parser and main
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="YAML config (default config/lekiwi.yaml); a relative path is looked "
                   "up in the working directory, then in the package")
    p.add_argument("--model", default=None,
                   help="ONNX model (overrides proposal.model_path; '' = no model: the exact "
                   "grid); a relative path is looked up like --config")
    p.add_argument("--sampler", default=None, choices=["auto", "model", "grid", "rejection"],
                   help="proposal sampler (overrides proposal.sampler)")
    p.add_argument("--samples", type=int, default=None,
                   help="proposals per grasp (overrides proposal.n_samples)")
    p.add_argument("--top-k", type=int, default=None,
                   help="ranked stances returned (overrides proposal.top_k)")
    p.add_argument("--seed", type=_seed, default=None,
                   help="random seed (>= 0; default: proposal.seed of the config)")
    p.add_argument("--camera-info", metavar="FILE", default=None,
                   help="camera calibration YAML (as camera_calibration writes it: "
                   "image_width, image_height, camera_matrix): the visibility check uses its "
                   "intrinsics instead of robot.camera of the config")
    p.add_argument("--map", default=None, metavar="MAP.yaml",
                   help="Nav2 map_server map (YAML + PGM/PNG image) in the grasps' frame: "
                   "the base footprint must clear its occupied (and unknown) cells")
    p.add_argument("--obstacles", default=None, metavar="OBSTACLES.yaml",
                   help="3-D boxes in the grasps' frame (obstacles: [{name, center, size, "
                   "yaw}]): no part of the robot may touch them, nor may they hide the "
                   "gripper from the front camera")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    ap = _Parser(prog="python -m reachability_ros", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("propose", help="stances for one grasp",
                       description="Propose ranked stances for one grasp. Exit codes: 0 a "
                       "stance, 1 no stance, 2 bad input, 130 interrupted, 3 internal error.")
    p.add_argument("--position", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"),
                   help="grasp position of gripper_frame_link in the world (m)")
    p.add_argument("--quat", type=float, nargs=4, metavar=("QX", "QY", "QZ", "QW"),
                   help="grasp orientation as a unit quaternion")
    p.add_argument("--rpy", type=float, nargs=3, metavar=("ROLL", "PITCH", "YAW"),
                   help="grasp orientation as fixed-axis roll, pitch, yaw (rad, or deg with "
                   "--degrees); the tool's +z is the approach axis")
    p.add_argument("--degrees", action="store_true", help="angles in degrees")
    p.add_argument("--frame-id", default="map", help="name of the world frame")
    p.add_argument("--symmetric", action="store_true",
                   help="the grasp flipped by 180° about its approach axis (the tool's +z) is "
                   "as good (a parallel gripper on a box): the better flip is answered")
    p.add_argument("--free-roll", action="store_true",
                   help="any rotation about the approach axis is as good (a top-down grasp of "
                   "a can): each stance reaches its own turn of the grasp (the table's turn°)")
    p.add_argument("--current-base", type=float, nargs=3, metavar=("X", "Y", "YAW"),
                   help="current base pose, for the travel/turn terms (and drawn in --plot)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (also for a bad request or config: "
                   "\"ok\": false with \"error\" set)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write a top-down picture (.png, .pdf, .svg, ...)")
    _common(p)
    p.set_defaults(func=cmd_propose)
    b = sub.add_parser("propose-batch", help="JSONL grasps in, JSONL results out",
                       description="One JSON result line per input line, in order. Exit "
                       "codes: 0 every line answered (malformed ones with \"ok\": false), 2 "
                       "the files or the config failed, 130 interrupted.")
    b.add_argument("--input", required=True, help="JSONL file of grasps ('-' = stdin)")
    b.add_argument("--output", required=True,
                   help="JSONL results ('-' = stdout); written atomically, never the input")
    _common(b)
    b.set_defaults(func=cmd_propose_batch)
    for name, text in TRAINING_COMMANDS.items():
        t = sub.add_parser(name, help=f"{text} (needs torch; {name} --help)", add_help=False)
        t.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def _report(exc_text: str, kind: str, code: int, json_mode: bool, sampler: str = "") -> int:
    print(f"error: {exc_text}" if kind != "interrupted" else exc_text, file=sys.stderr)
    if json_mode:
        print(dumps_record(error_record(exc_text, kind, sampler), indent=2))
    return code


def _run_training(argv: list[str]) -> int:
    try:
        from reachability_ros.training.cli import main as training_main
    except ImportError as exc:
        print(f"error: the trainer needs torch, onnx and tqdm ({exc}); `bash scripts/test.sh` "
              "installs them into .venv, or: .venv/bin/python -m pip install -e '.[train]'",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return training_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (see the module docstring). No traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = bool(argv) and argv[0] == "propose" and "--json" in argv
    args = None
    try:
        if argv and argv[0] in TRAINING_COMMANDS:
            return _run_training(argv)
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        return _report(str(exc), exc.kind, EXIT_BAD_INPUT, json_mode,
                       getattr(args, "_sampler", ""))
    except ConfigError as exc:
        return _report(str(exc), "config", EXIT_BAD_INPUT, json_mode)
    except ReachabilityError as exc:  # InvalidRequest, or the description and model checks
        kind = "invalid_request" if isinstance(exc, InvalidRequest) else "config"
        return _report(str(exc), kind, EXIT_BAD_INPUT, json_mode, getattr(args, "_sampler", ""))
    except KeyboardInterrupt:
        return _report("interrupted", "interrupted", EXIT_INTERRUPTED, json_mode)
    except BrokenPipeError:  # e.g. `... --output - | head -1`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _report(f"{exc.strerror or exc}{where}", "file", EXIT_BAD_INPUT, json_mode)
    except Exception as exc:
        if os.environ.get("REACHABILITY_ROS_DEBUG"):
            raise
        return _report(f"internal error: {type(exc).__name__}: {exc} (a bug: please report "
                       "it; REACHABILITY_ROS_DEBUG=1 shows the traceback)", "internal",
                       EXIT_INTERNAL, json_mode, getattr(args, "_sampler", ""))
