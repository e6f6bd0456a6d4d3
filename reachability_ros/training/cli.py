"""Command line of the offline trainer.

Usage::

    python -m reachability_ros.training.cli train config/train_lekiwi_flow.yaml --out runs/flow \\
        [--set train.max_epochs=2 --set data.cache_dir=/tmp/data]
    python -m reachability_ros.training.cli evaluate models/lekiwi_flow.onnx \\
        --data /tmp/data/manifest.json [--n-grasps 1000 --n-samples 1024]
    python -m reachability_ros.training.cli toy-table --out runs/toy
    python -m reachability_ros.training.cli parity runs/flow/checkpoint.pt runs/flow/model.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from reachability_ros.config_io import parse_overrides


def onnx_numpy_sampler(path: str):
    """A numpy sampler ``(cond, z) -> x`` over an onnxruntime session, and its metadata."""
    import onnxruntime as ort

    from .export import read_metadata

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def sample(cond: np.ndarray, z: np.ndarray) -> np.ndarray:
        outs = []
        for s in range(0, len(cond), 65536):
            outs.append(sess.run(["x"], {"cond": cond[s:s + 65536].astype(np.float32),
                                         "z": z[s:s + 65536].astype(np.float32)})[0])
        return np.concatenate(outs)

    return sample, read_metadata(path)


def cmd_evaluate(args) -> int:
    """Evaluate an ONNX model on held-out grasps of a dataset (LeKiwi metrics)."""
    from ..core.robot import WholeBodyModel
    from .data import load_dataset
    from .evaluate import evaluate_lekiwi

    sampler, md = onnx_numpy_sampler(args.model)
    va = load_dataset(args.data, "heldout")
    robot = WholeBodyModel()
    manifold = None
    if md["output"] == "manifold_coords":
        from ..core.manifold import StanceManifold

        manifold = StanceManifold(robot)
    G = min(args.n_grasps, len(va["cond"]))
    t0 = time.time()
    m = evaluate_lekiwi(sampler, va["cond"][:G], va["T_grasp"][:G], robot, args.n_samples,
                        int(md["dz"]), args.seed, output=md["output"], manifold=manifold,
                        n_ground_truth=args.n_ground_truth)
    m["eval_wall_s"] = time.time() - t0
    print(json.dumps(m, indent=2))
    return 0


def cmd_toy_table(args) -> int:
    """Train flow and cVAE on toy v2.1 and print seed 000's table with the NN baseline."""
    from ..core.toys import TwoLinkToy
    from .evaluate import TOY_KEYS, format_table, toy_nn_baseline
    from .train import train_from_config

    out = Path(args.out)
    rows = {"NN lookup (1-NN)": toy_nn_baseline(TwoLinkToy(), n_targets=args.n_targets,
                                                n_samples=args.n_samples)}
    import yaml

    from .train import load_config

    out.mkdir(parents=True, exist_ok=True)
    base = load_config(args.config)
    for name, fam in (("cVAE", "cvae"), ("flow (cINN)", "flow")):
        cfg = json.loads(json.dumps(base))
        cfg["eval"] = {"n_grasps": args.n_targets, "n_samples": args.n_samples}
        if fam == "cvae":
            cfg["model"] = {"family": "cvae", "dz": 4, "hidden": 128, "n_layers": 3}
            cfg["train"].update(free_bits=0.05, beta_warmup_steps=1000, noise_std=0.0)
        path = out / f"train_toy_v2_{fam}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        r = train_from_config(str(path), str(out / fam))
        rows[name] = r["metrics"]
    table = format_table(rows, TOY_KEYS)
    print(table)
    (out / "toy_table.md").write_text(table + "\n")
    (out / "toy_table.json").write_text(json.dumps(rows, indent=2, default=float))
    return 0


def cmd_parity(args) -> int:
    """Max |torch - onnxruntime| on 1,000 random inputs."""
    from .export import onnx_parity
    from .train import load_checkpoint

    model, _ = load_checkpoint(args.checkpoint)
    d = onnx_parity(model, args.onnx, n=1000)
    print(f"max abs diff torch vs onnxruntime: {d:.3g}")
    return 0 if d < 1e-4 else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="reachability_ros.training.cli")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train, evaluate and export from a config")
    t.add_argument("config")
    t.add_argument("--out", required=True)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e = sub.add_parser("evaluate", help="evaluate an ONNX model on held-out grasps")
    e.add_argument("model")
    e.add_argument("--data", required=True, help="dataset manifest.json (heldout split)")
    e.add_argument("--n-grasps", type=int, default=1000)
    e.add_argument("--n-samples", type=int, default=1024)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--n-ground-truth", type=int, default=0,
                   help="grasps compared with the exact ground truth of core.manifold")
    y = sub.add_parser("toy-table", help="seed 000's table on toy v2.1")
    y.add_argument("--config", default="config/train_toy_v2.yaml")
    y.add_argument("--out", required=True)
    y.add_argument("--n-targets", type=int, default=1000)
    y.add_argument("--n-samples", type=int, default=100)
    q = sub.add_parser("parity", help="torch vs onnxruntime parity")
    q.add_argument("checkpoint")
    q.add_argument("onnx")
    args = p.parse_args(argv)
    if args.cmd == "train":
        from .train import train_from_config

        r = train_from_config(args.config, args.out, parse_overrides(args.set))
        print(json.dumps({k: v for k, v in r.items() if k != "metrics"}, indent=2, default=str))
        return 0
    return {"evaluate": cmd_evaluate, "toy-table": cmd_toy_table, "parity": cmd_parity}[
        args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
