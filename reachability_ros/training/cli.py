"""Command line of the offline trainer: ``python -m reachability_ros <command>``.

Commands (``<command> --help`` for every option):

* ``train CONFIG --out DIR [--set KEY=VALUE ...]``: train, evaluate and export a model.
* ``dataset --config config/data_lekiwi.yaml --out DIR``: generate (or resume) a dataset.
* ``evaluate MODEL.onnx --data DIR/manifest.json``: LeKiwi metrics on held-out grasps.
* ``export CHECKPOINT --out MODEL.onnx``: a checkpoint (also of a stopped run) to ONNX.
* ``parity CHECKPOINT MODEL.onnx``: torch against onnxruntime on random inputs.
* ``toy-table --out DIR``: seed 000's table on the toy robot (about an hour).

Exit codes: 0 done, 1 a parity check failed, 2 a user error (one line on stderr, no
traceback), 130 interrupted. ``train``, ``export``, ``parity`` and ``toy-table`` need
torch (``pip install -e '.[train]'``); ``dataset`` and ``evaluate`` do not.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from reachability_ros.config_io import parse_overrides
from reachability_ros.core.errors import ConfigError, ReachabilityError

from . import COMMANDS

PROG = "python -m reachability_ros"


def _log(line: str) -> None:
    """Progress lines go to stderr; stdout holds only each command's result."""
    print(line, file=sys.stderr)


def _stop_on_first_interrupt():
    """Make the first Ctrl-C a clean stop (polled by the trainer), the second an abort."""
    flag = {"stop": False}

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        print("\nstopping after this step (Ctrl-C again to abort) ...", file=sys.stderr)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: plain KeyboardInterrupt
        pass
    return lambda: flag["stop"]


def cmd_train(args) -> int:
    """Train, evaluate and export from a config."""
    from .train import train_from_config

    r = train_from_config(args.config, args.out, parse_overrides(args.set), log=_log,
                          should_stop=_stop_on_first_interrupt())
    print(json.dumps({k: v for k, v in r.items() if k != "metrics"}, indent=2, default=str))
    return 130 if r["interrupted"] else 0


def cmd_dataset(args) -> int:
    """Generate or resume a dataset."""
    from .config import load_data_config
    from .dataset import generate_dataset

    cfg = load_data_config(args.config, parse_overrides(args.set))
    path = generate_dataset(cfg, args.out, log=_log, progress=True)
    print(path)
    return 0


def cmd_evaluate(args) -> int:
    """Evaluate an ONNX model on held-out grasps of a dataset (LeKiwi metrics)."""
    from ..core.config import RobotConfig
    from ..core.onnx_sampler import OnnxStanceModel, read_metadata
    from ..core.robot import WholeBodyModel
    from .dataset import load_dataset, load_manifest
    from .evaluate import evaluate_lekiwi

    if args.n_grasps < 1 or args.n_samples < 2 or args.n_ground_truth < 0:
        raise ConfigError("--n-grasps must be >= 1, --n-samples >= 2 and --n-ground-truth "
                          ">= 0")
    read_metadata(args.model)  # a missing or broken model file is the first error
    manifest = load_manifest(args.data)
    robot = WholeBodyModel(RobotConfig.from_dict(manifest["config"].get("robot") or {}))
    model = OnnxStanceModel(args.model, robot)
    va = load_dataset(args.data, "heldout")

    def sampler(cond: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.concatenate([model.run(cond[s:s + 65536], z[s:s + 65536])
                               for s in range(0, len(cond), 65536)])

    G = min(args.n_grasps, len(va["cond"]))
    t0 = time.time()
    m = evaluate_lekiwi(sampler, va["cond"][:G], va["T_grasp"][:G], robot, args.n_samples,
                        model.dz, args.seed, output=model.output,
                        n_ground_truth=args.n_ground_truth, progress=True)
    m["eval_wall_s"] = time.time() - t0
    # JSON has no NaN: a metric without data (e.g. no sample near the grasp) is null
    print(json.dumps({k: v if np.isfinite(v) else None for k, v in m.items()}, indent=2))
    return 0


def cmd_export(args) -> int:
    """Export a checkpoint to ONNX."""
    from .export import export_checkpoint

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; choose another --out or pass --force to replace it")
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {str(out)!r} must end in .onnx")
    path = export_checkpoint(args.checkpoint, out)
    print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def cmd_parity(args) -> int:
    """Max |torch - onnxruntime| on random inputs."""
    from .checkpoint import load_checkpoint
    from .export import onnx_parity

    model, _ = load_checkpoint(args.checkpoint)
    d = onnx_parity(model, args.onnx, n=args.n)
    ok = d < args.tol
    print(f"max abs diff torch vs onnxruntime over {args.n} inputs: {d:.3g} "
          f"({'ok' if ok else 'FAILED'}: tolerance {args.tol:g})")
    return 0 if ok else 1


def cmd_toy_table(args) -> int:
    """Train a cVAE and a flow on toy v2.1 and print seed 000's table with the NN baseline."""
    from ..evaluation.toys import TwoLinkToy
    from .config import load_train_config
    from .dataset import make_output_dir
    from .evaluate import TOY_KEYS, format_table, toy_nn_baseline
    from .train import train_from_config

    if args.n_targets < 1 or args.n_samples < 2:
        raise ConfigError("--n-targets must be >= 1 and --n-samples >= 2")
    load_train_config(args.config)  # a bad config fails before the baseline's work
    out = make_output_dir(args.out)
    rows = {"NN lookup (1-NN)": toy_nn_baseline(TwoLinkToy(), n_targets=args.n_targets,
                                                n_samples=args.n_samples)}
    evals = {"eval.n_grasps": args.n_targets, "eval.n_samples": args.n_samples}
    runs = (("cVAE", "cvae", {"model.family": "cvae", "model.dz": 4, "model.hidden": 128,
                              "model.n_layers": 3, "train.free_bits": 0.05,
                              "train.beta_warmup_steps": 1000, "train.noise_std": 0.0}),
            ("flow (cINN)", "flow", {}))
    stop = _stop_on_first_interrupt()
    for i, (name, fam, sets) in enumerate(runs):
        print(f"[{i + 1}/{len(runs)}] training the {name} on toy v2.1 ...", file=sys.stderr)
        r = train_from_config(args.config, out / fam, {**sets, **evals}, log=_log,
                              should_stop=stop)
        if r["interrupted"]:
            return 130
        rows[name] = r["metrics"]
    table = format_table(rows, TOY_KEYS)
    print(table)
    (out / "toy_table.md").write_text(table + "\n")
    (out / "toy_table.json").write_text(json.dumps(rows, indent=2, default=float))
    return 0


def _out_and_set(parser: argparse.ArgumentParser, out_help: str, example: str) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help=out_help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config key, e.g. --set {example} (repeatable)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of the training commands."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train, evaluate and export from a config (tiny: "
                       "config/train_tiny.yaml, under a minute)",
                       description="Train a model from a config, evaluate it on held-out "
                       "grasps and export it to ONNX. Ctrl-C stops after the current step "
                       "and keeps the best checkpoint.")
    t.add_argument("config", help="training config, e.g. config/train_tiny.yaml")
    _out_and_set(t, "output folder (created): checkpoint.pt, metrics.csv, plots, model.onnx, "
                 "result.json, data/", "train.max_epochs=2")
    t.set_defaults(func=cmd_train)
    d = sub.add_parser("dataset", help="generate or resume a training dataset",
                       description="Generate (or resume) a sharded dataset of (grasp, "
                       "stance) pairs and print its statistics.")
    d.add_argument("--config", default="config/data_lekiwi.yaml",
                   help="dataset config (default: %(default)s)")
    _out_and_set(d, "dataset folder (created)", "train_pairs=10000")
    d.set_defaults(func=cmd_dataset)
    e = sub.add_parser("evaluate", help="evaluate an ONNX model on held-out grasps",
                       description="LeKiwi metrics of an exported model on the held-out "
                       "split of a dataset: FK error, limits, visibility, coverage.")
    e.add_argument("model", help="the .onnx model")
    e.add_argument("--data", required=True,
                   help="dataset manifest.json or its folder (its held-out split is used), "
                   "e.g. runs/tiny/data")
    e.add_argument("--n-grasps", type=int, default=1000, help="held-out grasps (%(default)s)")
    e.add_argument("--n-samples", type=int, default=1024,
                   help="samples per grasp (%(default)s)")
    e.add_argument("--seed", type=int, default=0, help="noise seed (%(default)s)")
    e.add_argument("--n-ground-truth", type=int, default=0,
                   help="grasps also compared with their exact ground truth (%(default)s)")
    e.set_defaults(func=cmd_evaluate)
    x = sub.add_parser("export", help="export a checkpoint to ONNX with its metadata",
                       description="Export a training checkpoint (also one of a stopped "
                       "run) to an ONNX graph the service loads.")
    x.add_argument("checkpoint", help="checkpoint.pt of a training run")
    x.add_argument("--out", required=True, metavar="MODEL.onnx", help="the file to write")
    x.add_argument("--force", action="store_true", help="replace --out if it exists")
    x.set_defaults(func=cmd_export)
    q = sub.add_parser("parity", help="torch against onnxruntime on random inputs",
                       description="Max |torch - onnxruntime| of a checkpoint and its "
                       "export; exit 1 above the tolerance.")
    q.add_argument("checkpoint", help="checkpoint.pt")
    q.add_argument("onnx", help="its exported .onnx")
    q.add_argument("--n", type=int, default=1000, help="random inputs (%(default)s)")
    q.add_argument("--tol", type=float, default=1e-4, help="tolerance (%(default)s)")
    q.set_defaults(func=cmd_parity)
    y = sub.add_parser("toy-table", help="seed 000's table on toy v2.1 (about an hour)",
                       description="Train a cVAE and a flow on the two-link toy and print "
                       "seed 000's table with the nearest-neighbour baseline: two "
                       "30,000-step trainings, about an hour on two CPU cores.")
    y.add_argument("--config", default="config/train_toy_v2.yaml",
                   help="toy training config (%(default)s)")
    y.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    y.add_argument("--n-targets", type=int, default=1000, help="test targets (%(default)s)")
    y.add_argument("--n-samples", type=int, default=100,
                   help="samples per target (%(default)s)")
    y.set_defaults(func=cmd_toy_table)
    assert set(sub.choices) == set(COMMANDS)
    return p


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run one training command; return the exit code (2 on a user error, no traceback)."""
    args = build_parser(prog).parse_args(argv)
    try:
        return args.func(args)
    except ReachabilityError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: {args.cmd} needs the training extra (pip install -e '.[train]'): "
              f"{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(prog="python -m reachability_ros.training.cli"))
