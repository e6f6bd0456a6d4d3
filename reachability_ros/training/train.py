"""The one offline trainer, shared by the CLI and the ROS trainer node.

:func:`train_from_config` reads a training config (``config/train_*.yaml``,
validated by :mod:`.config`), gets the data (``training/dataset.py``: an existing
dataset or a new one in the output folder; toy v2 from ``evaluation.toy_data``),
fits the feature-group normalizers, trains with early stopping on the validation
NLL (flow) or negative ELBO (cVAE), logs health metrics (seed 000 section 5.3; seed
004 section 4) to ``metrics.csv`` and PNG plots, evaluates on held-out grasps and
exports the ONNX graph with its metadata (:func:`.export.export_checkpoint`).

A caller can follow (``progress``) and stop (``should_stop``) a run; a stopped run
keeps its best checkpoint, which :func:`.export.export_checkpoint` turns into a
model. Every user error (bad YAML, an unknown key, a bad value, an output folder
that cannot be created, CUDA asked on a CPU build, a missing dataset) is a
:class:`~reachability_ros.core.errors.ConfigError` with a one-line message.

(About 560 lines: the data, the loop with its early stopping, the per-epoch diagnostics,
the mixture's pruning and the export read top to bottom in one module; the models, the
diagnostics' maths, the plots and the checkpoints are in their own modules.)
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.paths import resolve_data_path
from .checkpoint import load_checkpoint, save_checkpoint
from .config import MANIFOLD_FAMILIES, TrainingConfig, load_train_config
from .diagnostics import (conditioning_sensitivity, fk_loss, health, integrator_sweep,
                          normalization_round_trip)
from .models import ConditionalFlow, TorchFK, build_model

Log = Callable[[str], None]
Progress = Callable[[dict], None]


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``train.device``.

    ``auto``: CUDA when this torch build has a usable GPU, else the CPU.

    Raises:
        ConfigError: CUDA asked for on a build or machine without it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device = {name!r} but this torch build has no usable "
                              f"CUDA (torch {torch.__version__}); use train.device=cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device = {name!r} but only {torch.cuda.device_count()} "
                              "CUDA device(s) are present")
    return torch.device(name)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ----------------------------------------------------------------------- data
def get_data(cfg: TrainingConfig, out_dir: Path, log: Log) -> tuple[dict, dict, dict]:
    """Return ``(train, val, meta)``: array dicts and what evaluation needs.

    ``meta`` holds ``source``, and ``robot`` (a WholeBodyModel) and ``manifold``
    (``lekiwi_manifold``) or ``toy`` (``toy_v2``).

    Raises:
        ConfigError: a dataset at ``data.path`` that is missing or made for another
            robot description, or bad generator options.
    """
    d = cfg.data
    meta: dict[str, Any] = {"source": d.source}
    if d.source == "toy_v2":
        from ..evaluation.toy_data import toy_v2_dataset
        from ..evaluation.toys import TwoLinkToy

        toy = meta["toy"] = TwoLinkToy()
        c_tr, x_tr = toy_v2_dataset(d.n_train, np.random.default_rng(cfg.seed), toy,
                                    cond_dim=d.cond_dim)
        c_va, x_va = toy_v2_dataset(d.n_val, np.random.default_rng(cfg.seed + 1), toy,
                                    cond_dim=d.cond_dim)
        return ({"cond": c_tr.astype(np.float32), "x": x_tr.astype(np.float32)},
                {"cond": c_va.astype(np.float32), "x": x_va.astype(np.float32)}, meta)
    from ..core.robot import WholeBodyModel
    from .dataset import generate_dataset, load_dataset, load_manifest

    robot = meta["robot"] = WholeBodyModel(cfg.robot)
    if d.source == "lekiwi_manifold":
        from ..core.manifold import StanceManifold

        meta["manifold"] = StanceManifold(robot)
    if d.path:
        manifest = resolve_data_path(d.path)
        made_for = load_manifest(manifest).get("urdf_sha256")
        if made_for != robot.urdf_sha256:
            raise ConfigError(f"data.path {d.path!r} was made for another robot description "
                              f"(URDF SHA-256 {str(made_for)[:12]}..., this robot's "
                              f"{robot.urdf_sha256[:12]}...)")
    else:
        t0 = time.time()
        manifest = generate_dataset(cfg.generator_data_config(),
                                    Path(d.cache_dir).expanduser() if d.cache_dir
                                    else out_dir / "data", log=log, progress=False)
        log(f"data: ready in {time.time() - t0:.1f} s")
    meta["data_dir"] = Path(manifest).parent if Path(manifest).suffix else Path(manifest)
    tr = {k: v[:d.n_train] for k, v in load_dataset(manifest, "train").items()}
    va = {k: v[:d.n_val] for k, v in load_dataset(manifest, "heldout").items()}
    log(f"data: {len(tr['cond'])} train / {len(va['cond'])} held-out pairs from {manifest}")
    return tr, va, meta


def target_key(family: str) -> str:
    """Name of the output array in a dataset for a model family."""
    return "y" if family in MANIFOLD_FAMILIES else "x"


def _target_tables(cfg: TrainingConfig, arrays: dict, meta: dict, cache_dir: Path,
                   log: Log) -> np.ndarray:
    """Reverse-KL target tables of the grasps of a split (``training/target.py``)."""
    from ..core.visibility import Visibility
    from .target import target_tables

    if "T_grasp" not in arrays:
        raise ConfigError("the manifold_gmm family needs the grasps (T_grasp) of its dataset")
    vis = meta.setdefault("visibility", Visibility(meta["robot"]))
    return target_tables(arrays["T_grasp"], meta["manifold"], vis, cfg.rkl, cache_dir, log)


# ------------------------------------------------------------------ training
def _batches_loss(model, xb, cb, tcfg, step, ctx, gen=None):
    """Per-batch training loss, per-sample loss and logged statistics.

    ``xb`` holds the targets of the batch (raw outputs; for ``manifold_gmm`` the target
    tables of the grasps); ``ctx`` the FK regularizer (``fk``) and the reverse-KL state
    (``rkl``) of a training step, None for the validation loss.
    """
    ctx = ctx or {}
    cn = model.cond_norm(cb)
    stats: dict[str, torch.Tensor] = {}
    if model.family == "manifold_gmm":
        if "rkl" in ctx:
            return ctx["rkl"].training_loss(model, xb, cn, step, gen)
        bound, _ = ctx["rkl_eval"].bound(model, model, xb, cn, gen)
        return -bound.mean(), -bound, stats
    xn = model.x_norm(xb)
    noise = tcfg.noise_std
    if isinstance(noise, tuple) or noise > 0:
        sd = torch.as_tensor(noise, dtype=xn.dtype, device=xn.device)
        xn = xn + sd * torch.randn(xn.shape, generator=gen, device=xn.device) / model.x_norm.std
    if isinstance(model, ConditionalFlow):
        per, st = model.nll_normalized(xn, cn)
        train = per
        stats["logdet"] = st["logdet"].mean()
    elif model.family in ("cfm", "manifold_cfm"):
        per, st = model.loss(xn, cn, gen)
        train = per
        t = st["t"]
        for name, lo, hi in (("t_early", 0.0, 1 / 3), ("t_mid", 1 / 3, 2 / 3),
                             ("t_late", 2 / 3, 1.0)):
            m = (t >= lo) & (t < hi)
            stats[f"loss_{name}"] = per[m].mean() if bool(m.any()) else per.new_zeros(())
    else:
        beta = tcfg.beta_max * min(1.0, step / max(1, tcfg.beta_warmup_steps))
        train, per, st = model.loss(xn, cn, beta=beta, free_bits=tcfg.free_bits)
        stats["kl"] = st["kl_dim"].sum()
        stats["rec"] = st["rec"].mean()
    loss = train.mean()
    fk_ctx = ctx.get("fk")
    if tcfg.fk_weight > 0 and fk_ctx is not None:
        z = torch.randn(len(cb), model.dz, device=cb.device)
        xs = model.sample(cb, z)
        fl = fk_loss(fk_ctx["fk"], xs, cb, fk_ctx["reach"], fk_ctx["lower"], fk_ctx["upper"])
        stats["fk"] = fl.mean()
        loss = loss + tcfg.fk_weight * fl.mean()
    return loss, per, stats


def _eval_nll(model, x, c, tcfg, bs=8192, ctx=None) -> float:
    """Validation NLL (flow), loss (flow matching), negative ELBO (cVAE, mixture), per sample.

    Fixed noise.
    """
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(123)
    tot, n = 0.0, 0
    if model.family == "manifold_gmm":
        bs = 256  # a grasp's target table is large
    with torch.no_grad():
        torch.manual_seed(123)
        for s in range(0, len(x), bs):
            _, per, _ = _batches_loss(model, x[s:s + bs], c[s:s + bs], tcfg, 10 ** 9, ctx, gen)
            tot += float(per.sum())
            n += len(per)
    model.train()
    return tot / max(n, 1)


def _robot_metadata(meta: dict) -> dict[str, str]:
    from ..core.onnx_sampler import robot_metadata
    from .export import toy_robot_metadata

    return robot_metadata(meta["robot"]) if "robot" in meta else toy_robot_metadata(meta["toy"])


def train_from_config(config_path: str | Path, out_dir: str | Path,
                      overrides: dict | None = None, log: Log = print, *,
                      progress: Progress | None = None,
                      should_stop: Callable[[], bool] | None = None) -> dict:
    """Train, evaluate and export one model from a config file.

    Args:
        config_path: ``config/train_*.yaml`` (relative: the working directory, then
            the package's).
        out_dir: output folder (created): ``checkpoint.pt``, ``metrics.csv``,
            ``loss.png``, ``donut.png``, ``model.onnx`` (``export.name``),
            ``result.json``, and ``data/`` when the dataset is generated here.
        overrides: dotted keys to values (``{"train.max_epochs": 2}``), validated
            like the file.
        log: line logger.
        progress: called after every epoch with ``{"epoch": epochs done (1-based),
            "max_epochs", "loss": mean training loss of the epoch, "val_nll",
            "elapsed_s"}``.
        should_stop: polled between batches; when it returns True the run stops,
            keeps (or, before the first epoch ends, writes) the checkpoint, skips the
            evaluation and the export, and returns with ``interrupted: True``.

    Returns:
        A summary: ``family``, ``epochs``, ``best_epoch``, ``val_nll``,
        ``train_wall_s``, ``device``, ``checkpoint``, ``metrics_csv``, ``roundtrip``,
        ``interrupted``, ``wall_s``, and after a complete run ``sensitivity``,
        ``metrics`` (evaluation), ``plots``, ``onnx`` and ``onnx_bytes``.

    Raises:
        ConfigError: any user error (one-line message).
    """
    t_start = time.time()
    cfg = load_train_config(config_path, overrides)
    tcfg = cfg.train
    device = select_device(tcfg.device)
    from .dataset import load_manifest, make_output_dir

    if cfg.data.path and cfg.data.source != "toy_v2":
        load_manifest(resolve_data_path(cfg.data.path))  # missing: refused before any work
    out = make_output_dir(out_dir)
    if tcfg.threads > 0:
        torch.set_num_threads(tcfg.threads)
    set_seed(cfg.seed)
    log(f"device: {device}; config {config_path}; out {out}")

    tr, va, meta = get_data(cfg, out, log)
    family = cfg.model.family
    key = target_key(family)
    if key not in tr:
        raise ConfigError(f"the data of source {meta['source']!r} have no {key!r} array for "
                          f"{family} (data.generator.manifold is off?)")
    dx, dc = tr[key].shape[1], tr["cond"].shape[1]
    noise = np.asarray(tcfg.noise_std, dtype=float)
    if noise.ndim == 1 and len(noise) != dx:
        raise ConfigError(f"train.noise_std has {len(noise)} values for {dx} output columns")
    params = cfg.model.params()
    spec = {"family": family, "dx": int(dx), "dc": int(dc), "params": params, "seed": cfg.seed}
    model = build_model(family, dx, dc, params, seed=cfg.seed)
    model.cond_norm.fit(tr["cond"])
    gmm = family == "manifold_gmm"
    if not gmm:
        model.x_norm.fit(tr[key])
        # Floor each output's scale at its dequantization noise: a column that is constant
        # in the data (a branch never seen) would otherwise keep the 1e-3 floor and blow the
        # noise up a thousandfold in normalized space.
        with torch.no_grad():
            model.x_norm.std.copy_(torch.maximum(model.x_norm.std, torch.as_tensor(
                np.broadcast_to(noise, (dx,)).copy(), dtype=torch.float32)))
    model.to(device)

    if gmm:  # the targets are the grasps' tabulated target densities, not stances
        X = torch.as_tensor(_target_tables(cfg, tr, meta, meta["data_dir"], log), device=device)
        Xv = torch.as_tensor(_target_tables(cfg, va, meta, meta["data_dir"], log),
                             device=device)
    else:
        X = torch.as_tensor(tr[key], dtype=torch.float32, device=device)
        Xv = torch.as_tensor(va[key], dtype=torch.float32, device=device)
    C = torch.as_tensor(tr["cond"], dtype=torch.float32, device=device)
    W = torch.as_tensor(tr.get("weight", np.ones(len(X))), dtype=torch.float32)
    Cv = torch.as_tensor(va["cond"], dtype=torch.float32, device=device)
    rt = normalization_round_trip(model, Cv, Xv)
    log("normalization round trip: " + ", ".join(f"{k[10:]} {v:.2e}" for k, v in rt.items()))

    ctx: dict[str, Any] = {}
    if tcfg.fk_weight > 0 and family in ("flow", "cvae", "cfm") and "robot" in meta:
        r = meta["robot"]
        ctx["fk"] = {"fk": TorchFK(r).to(device), "reach": r.config.reach_m,
                     "lower": torch.tensor(r.lower[3:], dtype=torch.float32, device=device),
                     "upper": torch.tensor(r.upper[3:], dtype=torch.float32, device=device)}
    if gmm:
        from .mixture import ReverseKL
        ctx["rkl"] = ReverseKL(model, cfg.rkl)
    epoch_eval = _epoch_ground_truth(cfg, va, meta) if cfg.eval.epoch_gt_grasps else None

    extra = {"robot_metadata": _robot_metadata(meta), "train_config": cfg.to_dict(),
             "metrics": {}, "interrupted": False}
    ck_path = out / "checkpoint.pt"
    rows, best, best_epoch, interrupted = _fit(
        model, (X, C, W, Xv, Cv), tcfg, ctx, cfg.seed, device, t_start, log, progress,
        should_stop, lambda epoch, val: save_checkpoint(ck_path, model, spec, dict(
            extra, epoch=epoch, val_nll=val)), out / "metrics.csv", epoch_eval)
    if not ck_path.exists():  # stopped before the first epoch ended: keep what there is
        save_checkpoint(ck_path, model, spec, dict(extra, epoch=-1, val_nll=None,
                                                   interrupted=True))
    result: dict[str, Any] = {"family": family, "epochs": len(rows), "best_epoch": best_epoch,
                              "val_nll": best if best_epoch >= 0 else None,
                              "train_wall_s": time.time() - t_start, "device": str(device),
                              "checkpoint": str(ck_path), "metrics_csv": str(out / "metrics.csv"),
                              "roundtrip": rt, "interrupted": interrupted}
    if interrupted:
        log(f"stopped after {len(rows)} epoch(s); checkpoint {ck_path} (export it with "
            f"python -m reachability_ros export {ck_path} --out MODEL.onnx)")
    else:
        if gmm:
            result["pruned"] = _prune(ck_path, C.cpu(), cfg.rkl.prune_weight, log)
        result["train_wall_s"] = time.time() - t_start
        _finish(result, cfg, out, ck_path, rows, va, meta, log)
    result["wall_s"] = time.time() - t_start
    (out / "result.json").write_text(json.dumps(result, indent=2, default=float))
    log(f"done in {result['wall_s']:.1f} s: "
        + json.dumps(result.get("metrics", {}), default=float))
    return result


def _fit(model, tensors, tcfg, ctx, seed, device, t_start, log, progress, should_stop,
         save, csv_path, epoch_eval=None):
    """The epoch loop; returns ``(rows, best val, best epoch, interrupted)``."""
    X, C, W, Xv, Cv = tensors
    bs, max_epochs = tcfg.batch_size, tcfg.max_epochs
    spe = tcfg.steps_per_epoch or max(1, len(X) // bs)
    total = max_epochs * spe
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    warm = min(500, total // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))) + 0.01)
    gen = torch.Generator(device=device).manual_seed(seed)
    stop = should_stop or (lambda: False)
    bar = None
    if tcfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="step", desc="training", mininterval=1.0)
    rows: list[dict] = []
    best, best_epoch, step, interrupted = float("inf"), -1, 0, False
    try:
        for epoch in range(max_epochs):
            model.train()
            idx = torch.multinomial(W, spe * bs, replacement=True,
                                    generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            acc = {"loss": 0.0, "gn_pre": 0.0, "gn_post": 0.0, "gn_pre_max": 0.0}
            extra_acc: dict[str, float] = {}
            for i in range(spe):
                if stop():
                    interrupted = True
                    break
                b = idx[i * bs:(i + 1) * bs].to(device)
                loss, _, stats = _batches_loss(model, X[b], C[b], tcfg, step, ctx, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip))
                if bar is not None:
                    bar.update(1)
                if not math.isfinite(gn):
                    log(f"non-finite gradient at step {step}; skipping the step")
                    continue
                opt.step()
                sched.step()
                step += 1
                acc["loss"] += float(loss.detach())
                acc["gn_pre"] += gn
                acc["gn_post"] += min(gn, tcfg.grad_clip)
                acc["gn_pre_max"] = max(acc["gn_pre_max"], gn)
                for k, v in stats.items():
                    extra_acc[k] = extra_acc.get(k, 0.0) + float(v.detach())
            if interrupted:
                break
            row = _epoch_row(model, epoch, step, sched, acc, extra_acc, spe, Xv, Cv, tcfg,
                             device, t_start, ctx, epoch_eval)
            rows.append(row)
            log(f"epoch {epoch}: train {row['train_loss']:.4f} val {row['val_nll']:.4f} "
                f"gn {row['grad_norm_pre_clip']:.2f} sens {row['sens_height']:.4f} "
                f"({row['wall_s']:.0f} s)")
            _write_csv(csv_path, rows)
            if row["val_nll"] < best - 1e-4:
                best, best_epoch = row["val_nll"], epoch
                save(epoch, best)
            if progress is not None:
                progress({"epoch": epoch + 1, "max_epochs": max_epochs,
                          "loss": row["train_loss"], "val_nll": row["val_nll"],
                          "elapsed_s": row["wall_s"]})
            if epoch - best_epoch >= tcfg.patience:
                log(f"early stop at epoch {epoch}: best val {best:.4f} at epoch {best_epoch}")
                break
            if tcfg.time_budget_s and time.time() - t_start > tcfg.time_budget_s:
                log(f"time budget {tcfg.time_budget_s:.0f} s reached after epoch {epoch}")
                break
            if stop():
                interrupted = True
                break
    finally:
        if bar is not None:
            bar.close()
    return rows, best, best_epoch, interrupted


def _epoch_row(model, epoch, step, sched, acc, extra_acc, spe, Xv, Cv, tcfg, device,
               t_start, ctx=None, epoch_eval=None) -> dict:
    """One row of ``metrics.csv``: losses, gradient norms, validation and health."""
    row: dict[str, float] = {"epoch": epoch, "step": step, "lr": sched.get_last_lr()[0],
                             "train_loss": acc["loss"] / spe,
                             "grad_norm_pre_clip": acc["gn_pre"] / spe,
                             "grad_norm_post_clip": acc["gn_post"] / spe,
                             "grad_norm_pre_clip_max": acc["gn_pre_max"]}
    row.update({f"train_{k}": v / spe for k, v in extra_acc.items()})
    eval_ctx = {"rkl_eval": ctx["rkl"]} if ctx and "rkl" in ctx else None
    row["val_nll"] = _eval_nll(model, Xv, Cv, tcfg, ctx=eval_ctx)
    nb = min(4096, len(Xv))
    row.update(health(model, Xv[:nb].float() if model.family != "manifold_gmm" else None,
                      Cv[:nb]))
    row.update(conditioning_sensitivity(model.cpu(), Cv[:nb].cpu()))
    if epoch_eval is not None:
        row.update(epoch_eval(model))
    model.to(device)
    row["wall_s"] = time.time() - t_start
    return row


def _epoch_ground_truth(cfg: TrainingConfig, va: dict, meta: dict) -> Callable | None:
    """Seed 004's ground-truth comparison after every epoch: ``model -> {gt_*: float}``.

    The first ``eval.epoch_gt_grasps`` held-out grasps, ``eval.n_samples`` samples each,
    against their exact stance sets (coverage gap, KL, mode recall) and the fraction of
    samples that are valid, visible stances within 20 mm / 5 deg. LeKiwi data only.
    """
    if "robot" not in meta or "T_grasp" not in va:
        return None
    from ..core.manifold import StanceManifold
    from ..core.onnx_sampler import FAMILY_OUTPUT
    from ..core.visibility import Visibility
    from .evaluate import evaluate_lekiwi, torch_sampler

    k = min(cfg.eval.epoch_gt_grasps, len(va["cond"]))
    robot = meta["robot"]
    manifold = meta.get("manifold") or StanceManifold(robot)
    vis = meta.setdefault("visibility", Visibility(robot))

    def run(model) -> dict[str, float]:
        m = evaluate_lekiwi(torch_sampler(model), va["cond"][:k], va["T_grasp"][:k], robot,
                            cfg.eval.n_samples, model.dz, cfg.seed, visibility=vis,
                            output=FAMILY_OUTPUT[model.family], manifold=manifold,
                            n_ground_truth=k)
        return {f"epoch_{key}": m[key] for key in (
            "gt_coverage_gap_rad_mean", "gt_kl_mean", "gt_mode_recall_mean",
            "frac_good_20mm_5deg", "pos_err_mm_median") if key in m}

    return run


def _prune(ck_path: Path, cond: torch.Tensor, threshold: float, log: Log) -> list[int]:
    """Remove the mixture components that no training grasp uses.

    Seed 001 section 3.4.2 (removing components), with the largest weight over the
    training grasps as the criterion instead of the mean: a component that only a rare
    kind of grasp needs (a branch that is feasible alone for a few grasps) stays. The
    kept components are written as a smaller model (``ConditionalMixture.keep``: its spec
    lists their branches), so the exported graph evaluates only them. Returns the removed
    components.
    """
    model, ck = load_checkpoint(ck_path)
    mean, top = model.weight_stats(cond)
    off = [int(k) for k in torch.nonzero(top < threshold).flatten()] if threshold > 0 else []
    if len(off) == model.K:  # never remove everything
        off.remove(int(torch.argmax(top)))
    kept = [k for k in range(model.K) if k not in off]
    small = model.keep(kept)
    spec = dict(ck["spec"], params=dict(ck["spec"]["params"],
                                        branches=small.branch_of.tolist()))
    save_checkpoint(ck_path, small, spec, dict(ck["extra"], pruned=off,
                                               mean_weights=mean.tolist(),
                                               max_weights=top.tolist()))
    log(f"mixture: {len(kept)} of {model.K} components kept (largest weight >= "
        f"{threshold:g}), on branches {small.branch_of.tolist()}; mean weights "
        f"{[round(float(v), 4) for v in mean]}, largest {[round(float(v), 3) for v in top]}")
    return off


def _finish(result: dict, cfg: TrainingConfig, out: Path, ck_path: Path, rows: list[dict],
            va: dict, meta: dict, log: Log) -> None:
    """Evaluate the best checkpoint, plot, store the metrics in it and export it."""
    model, ck = load_checkpoint(ck_path)
    result["sensitivity"] = conditioning_sensitivity(
        model, torch.as_tensor(va["cond"][:4096], dtype=torch.float32))
    metrics = evaluate_trained(model, va, meta, cfg, log)
    metrics["val_nll"] = result["val_nll"]
    metrics["train_wall_s"] = result["train_wall_s"]
    result["metrics"] = metrics
    if cfg.eval.integrator_steps and model.family in ("cfm", "manifold_cfm"):
        result["integrator_sweep"] = integrator_sweep(
            model, lambda m: evaluate_trained(m, va, meta, cfg, log), cfg.eval.integrator_steps,
            log)
    try:
        result["plots"] = _plots(out, rows, model, va, meta, cfg.seed)
    except Exception as e:  # noqa: BLE001 - plotting must never lose a trained model
        log(f"plotting failed: {e!r}")
    extra = dict(ck["extra"], metrics={k: float(v) for k, v in metrics.items()
                                       if v is not None})
    save_checkpoint(ck_path, model, ck["spec"], extra)
    if cfg.export.onnx:
        from .export import export_checkpoint

        onnx_path = export_checkpoint(ck_path, out / cfg.export.name)
        result["onnx"] = str(onnx_path)
        result["onnx_bytes"] = onnx_path.stat().st_size


def _plots(out, rows, model, va, meta, seed):
    from .plots import make_plots
    return make_plots(out, rows, model, va, meta, seed)


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def evaluate_trained(model, va: dict, meta: dict, cfg: TrainingConfig, log: Log) -> dict:
    """Evaluate a trained model on the held-out grasps (``eval`` section of the config)."""
    from ..core.onnx_sampler import FAMILY_OUTPUT
    from .evaluate import evaluate_lekiwi, evaluate_toy, torch_sampler

    G = min(cfg.eval.n_grasps, len(va["cond"]))
    ns = cfg.eval.n_samples
    sampler = torch_sampler(model)
    if meta["source"] == "toy_v2":
        return evaluate_toy(sampler, meta["toy"], va["cond"].shape[1], G, ns, model.dz,
                            cfg.seed)
    if "T_grasp" not in va:
        log("no T_grasp in the data: skipping the FK evaluation")
        return {}
    return evaluate_lekiwi(sampler, va["cond"][:G], va["T_grasp"][:G], meta["robot"], ns,
                           model.dz, cfg.seed, visibility=meta.get("visibility"),
                           output=FAMILY_OUTPUT[model.family], manifold=meta.get("manifold"),
                           n_ground_truth=min(cfg.eval.n_ground_truth, G))
