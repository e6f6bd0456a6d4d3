"""The one offline trainer, shared by the CLI and the ROS trainer node.

:func:`train_from_config` reads a YAML config (``config/train_*.yaml``), gets
the data (the data module's ``generate_dataset`` / ``load_dataset`` when it is
installed, else the small built-in generator below), fits the feature-group
normalizers, trains with early stopping on validation NLL (flow) or negative
ELBO (cVAE), logs health metrics (seed 000, section 5.3; seed 004, section 4)
to ``metrics.csv`` and PNG plots, evaluates on held-out grasps and exports the
ONNX graph with its metadata.

Config sections (all keys optional except ``model.family``)::

    seed: 0
    robot: lekiwi                 # or toy_v2
    data: {source: lekiwi | lekiwi_manifold | toy_v2, n_train, n_val, generator: {...},
           path: <manifest.json of an existing dataset>}
    model: {family: flow | cvae | manifold_flow, ...constructor parameters}
    train: {batch_size, lr, weight_decay, max_epochs, steps_per_epoch, patience,
            grad_clip, noise_std, fk_weight, beta_max, beta_warmup_steps, free_bits,
            time_budget_s, threads, device, progress}
    eval: {n_grasps, n_samples}
    export: {onnx: true, name: model.onnx}
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..core.errors import ConfigError
from .models import ConditionalFlow, ConditionalVAE, TorchFK, build_model

Log = Callable[[str], None]


# --------------------------------------------------------------------- config
def load_config(path: str | Path) -> dict:
    """Read a training config YAML into a dict.

    Raises:
        ConfigError: missing file or not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"training config {str(p)!r} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"training config {str(p)!r} must be a mapping, got {type(data)}")
    return data


def apply_overrides(cfg: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Return a copy of ``cfg`` with dotted (``train.max_epochs``) or nested overrides."""
    out = copy.deepcopy(cfg)
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and "." not in key:
            out[key] = apply_overrides(out.get(key, {}) or {}, value)
            continue
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a section")
        d[parts[-1]] = value
    return out


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ----------------------------------------------------------------------- data
def builtin_lekiwi_dataset(n: int, seed: int, robot=None, min_limit_margin: float = 0.02,
                           quality: str = "manip_margin", chunk: int = 200_000) -> dict:
    """Minimal LeKiwi (grasp, stance) generator used when ``training.data`` is absent.

    Forward sampling: arm joints uniform within limits, base at the origin
    (features are invariant to planar motions), FK of the tool, keep samples
    whose front camera sees the tool unoccluded and whose limit margin is at
    least ``min_limit_margin``; weight = manipulability / its median times
    ``min(1, margin / 0.1)`` (``quality: manip_margin``) or 1 (``none``).

    Returns:
        Dict of float32 ``cond (N,7)``, ``x (N,9)``, ``weight (N,)`` and float64
        ``T_grasp (N,4,4)``.
    """
    from ..core.canonical import StanceCodec, condition_features
    from ..core.robot import WholeBodyModel
    from ..core.visibility import Visibility

    robot = robot or WholeBodyModel()
    vis = Visibility(robot)
    codec = StanceCodec(robot.config.reach_m, robot.lower[3:], robot.upper[3:])
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {"cond": [], "x": [], "weight": [], "T_grasp": []}
    have = 0
    while have < n:
        q = np.zeros((chunk, robot.nq))
        q[:, 3:] = rng.uniform(robot.lower[3:], robot.upper[3:], size=(chunk, robot.nq - 3))
        oMi = robot.joint_transforms(q)
        j, Tf = robot.frame_placement(robot.config.tool_frame)
        T = oMi[:, j] @ Tf
        margin = robot.limit_margin(q)
        keep = vis.check(q, oMi_base=oMi).visible & (margin >= min_limit_margin) & (T[:, 2, 3] > 0)
        q, T, oMi, margin = q[keep], T[keep], oMi[keep], margin[keep]
        if quality == "manip_margin":
            m = robot.manipulability(q, oMi=oMi)
            w = (m / max(np.median(m), 1e-12)).clip(0, 3) * np.minimum(1.0, margin / 0.1)
        else:
            w = np.ones(len(q))
        parts["cond"].append(condition_features(T, robot.config.reach_m).astype(np.float32))
        parts["x"].append(codec.encode(q, T).astype(np.float32))
        parts["weight"].append(w.astype(np.float32))
        parts["T_grasp"].append(T)
        have += len(q)
    return {k: np.concatenate(v)[:n] for k, v in parts.items()}


def _data_module():
    try:
        from . import data as data_module  # written by the data helper
    except ImportError:
        return None
    if hasattr(data_module, "generate_dataset") and hasattr(data_module, "load_dataset"):
        return data_module
    return None


def get_data(cfg: dict, out_dir: Path, log: Log) -> tuple[dict, dict, Any]:
    """Return ``(train, val, meta)`` arrays dicts for the config's data source.

    ``meta`` carries what evaluation needs (``robot``, ``toy``, ``manifold``).
    """
    dcfg = cfg.get("data", {}) or {}
    source = dcfg.get("source", "lekiwi")
    seed = int(cfg.get("seed", 0))
    n_train, n_val = int(dcfg.get("n_train", 200_000)), int(dcfg.get("n_val", 5_000))
    meta: dict[str, Any] = {"source": source}
    if source == "toy_v2":
        from ..core import toys

        toy = toys.TwoLinkToy()
        cd = int(dcfg.get("cond_dim", 2))
        c_tr, x_tr = toys.toy_v2_dataset(n_train, np.random.default_rng(seed), toy, cond_dim=cd)
        c_va, x_va = toys.toy_v2_dataset(n_val, np.random.default_rng(seed + 1), toy,
                                         cond_dim=cd)
        meta["toy"] = toy
        tr = {"cond": c_tr.astype(np.float32), "x": x_tr.astype(np.float32)}
        va = {"cond": c_va.astype(np.float32), "x": x_va.astype(np.float32)}
        return tr, va, meta
    from ..core.robot import WholeBodyModel

    robot = WholeBodyModel()
    meta["robot"] = robot
    if source == "lekiwi_manifold":
        from ..core.manifold import StanceManifold

        meta["manifold"] = StanceManifold(robot)
    mod = _data_module()
    use = dcfg.get("generator_impl", "auto")
    if mod is not None and use in ("auto", "data_module"):
        if dcfg.get("path"):
            manifest = Path(dcfg["path"])
        else:
            gen = dict(dcfg.get("generator", {}) or {})
            gen.setdefault("train_pairs", n_train)
            gen.setdefault("heldout_pairs", n_val)
            t0 = time.time()
            manifest = mod.generate_dataset(gen, Path(dcfg.get("cache_dir") or out_dir / "data"),
                                            seed, log=log, progress=False)
            log(f"data: generated with training.data in {time.time() - t0:.1f}s")
        tr = mod.load_dataset(manifest, "train")
        va = mod.load_dataset(manifest, "heldout")
        tr = {k: v[:n_train] for k, v in tr.items()}
        va = {k: v[:n_val] for k, v in va.items()}
        log(f"data: {len(tr['cond'])} train / {len(va['cond'])} held-out pairs from {manifest}")
        return tr, va, meta
    if use == "data_module":
        raise ConfigError("data.generator_impl = data_module but reachability_ros.training.data "
                          "is not importable")
    if source == "lekiwi_manifold":
        from .manifold_data import manifold_dataset

        full = manifold_dataset(meta["manifold"], n_train + n_val, seed)
    else:
        t0 = time.time()
        full = builtin_lekiwi_dataset(n_train + n_val, seed, robot,
                                      **(dcfg.get("builtin", {}) or {}))
        log(f"data: {n_train + n_val} samples from the built-in generator in "
            f"{time.time() - t0:.1f}s")
    n = len(full["cond"])
    perm = np.random.default_rng(seed + 7).permutation(n)
    nv = min(n_val, max(1, n // 10))
    va_idx, tr_idx = perm[:nv], perm[nv:nv + n_train]
    tr = {k: v[tr_idx] for k, v in full.items() if hasattr(v, "__len__") and len(v) == n}
    va = {k: v[va_idx] for k, v in full.items() if hasattr(v, "__len__") and len(v) == n}
    return tr, va, meta


def _as_arrays(d) -> dict:
    if isinstance(d, Mapping):
        return {k: np.asarray(v) for k, v in d.items()}
    cond, x = d[0], d[1]
    return {"cond": np.asarray(cond, np.float32), "x": np.asarray(x, np.float32)}


def target_key(family: str) -> str:
    """Name of the output array in a dataset for a model family."""
    return "y" if family == "manifold_flow" else "x"


# ---------------------------------------------------------------- diagnostics
def fk_loss(fk: TorchFK, x: torch.Tensor, cond: torch.Tensor, reach: float,
            lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """FK regularizer (seed 000, section 6.3 (3)) on raw stance features, ``(B,)``.

    The grasp in its canonical frame is ``(0, 0, c0 R)`` with the rotation's first
    two columns ``c[1:4]``, ``c[4:7]``; the stance is decoded in that frame.
    """
    q = torch.cat([x[:, :2] * reach, torch.atan2(x[:, 3], x[:, 2])[:, None],
                   0.5 * (x[:, 4:] * (upper - lower) + (upper + lower))], dim=1)
    T = fk(q)
    p_err = (T[:, 0, 3] ** 2 + T[:, 1, 3] ** 2 + (T[:, 2, 3] - cond[:, 0] * reach) ** 2) / reach ** 2
    r_err = ((T[:, :3, 0] - cond[:, 1:4]) ** 2).sum(1) + ((T[:, :3, 1] - cond[:, 4:7]) ** 2).sum(1)
    return p_err + r_err


def conditioning_sensitivity(model, cond: torch.Tensor, delta: float = 0.1) -> dict:
    """Seed 004 section 4.3: mean |change| of samples (same z) when one condition moves.

    Perturbs the height feature by ``delta`` (``0.1 R``) and, separately, rotates
    the condition to another held-out grasp's; reports the mean absolute change
    of the raw outputs and, for scale, their spread.
    """
    if float(model.cond_norm.std.max()) <= 1e-3:  # a constant condition (toy v2.1): no test
        return {"sens_height": float("nan"), "sens_other_grasp": float("nan"),
                "sample_std": float("nan")}
    with torch.no_grad():
        z = torch.randn(len(cond), model.dz, generator=torch.Generator().manual_seed(0))
        base = model.sample(cond, z)
        c2 = cond.clone()
        c2[:, 0] += delta
        moved = model.sample(c2, z)
        other = model.sample(torch.roll(cond, 1, 0), z)
        return {"sens_height": float((moved - base).abs().mean()),
                "sens_other_grasp": float((other - base).abs().mean()),
                "sample_std": float(base.std(0).mean())}


def normalization_round_trip(model, cond: torch.Tensor, x: torch.Tensor) -> dict:
    """Seed 004 section 4.4: max |denorm(norm(v)) - v| for both feature groups."""
    with torch.no_grad():
        return {"roundtrip_cond": float((model.cond_norm.inverse(model.cond_norm(cond))
                                         - cond).abs().max()),
                "roundtrip_x": float((model.x_norm.inverse(model.x_norm(x)) - x).abs().max())}


def health(model, xn: torch.Tensor, cn: torch.Tensor) -> dict:
    """Family health metrics on a validation batch (seed 000, section 5.3)."""
    out: dict[str, float] = {}
    with torch.no_grad():
        if isinstance(model, ConditionalFlow):
            z, ld = model.forward_normalized(xn, cn)
            rec = model.inverse_normalized(z, cn)
            out.update(z_mean=float(z.mean()), z_var=float(z.var()),
                       z_sq_mean=float((z ** 2).mean()), z_norm_mean=float(z.norm(dim=1).mean()),
                       logdet_mean=float(ld.mean()), logdet_std=float(ld.std()),
                       logdet_min=float(ld.min()), logdet_max=float(ld.max()),
                       inv_recon_err=float((rec - xn).abs().max()))
        elif isinstance(model, ConditionalVAE):
            mu, logvar = model.encode_normalized(xn, cn)
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).mean(0)
            for i, k in enumerate(kl.tolist()):
                out[f"kl_dim{i}"] = k
            out.update(mu_abs_mean=float(mu.abs().mean()), logvar_mean=float(logvar.mean()),
                       active_dims=float((kl > 0.01).sum()))
    return out


# ------------------------------------------------------------------ training
def _batches_loss(model, xb, cb, tcfg, step, fk_ctx, gen=None):
    xn = model.x_norm(xb)
    cn = model.cond_norm(cb)
    noise = tcfg.get("noise_std", 0.0)
    if isinstance(noise, (list, tuple)) or float(noise) > 0:
        sd = torch.as_tensor(noise, dtype=xn.dtype, device=xn.device)
        xn = xn + sd * torch.randn(xn.shape, generator=gen, device=xn.device) / model.x_norm.std
    stats: dict[str, torch.Tensor] = {}
    if isinstance(model, ConditionalFlow):
        per, st = model.nll_normalized(xn, cn)
        train = per
        stats["logdet"] = st["logdet"].mean()
    else:
        warm = max(1, int(tcfg.get("beta_warmup_steps", 2000)))
        beta = float(tcfg.get("beta_max", 1.0)) * min(1.0, step / warm)
        train, per, st = model.loss(xn, cn, beta=beta, free_bits=float(tcfg.get("free_bits", 0.0)))
        stats["kl"] = st["kl_dim"].sum()
        stats["rec"] = st["rec"].mean()
    loss = train.mean()
    fkw = float(tcfg.get("fk_weight", 0.0))
    if fkw > 0 and fk_ctx is not None:
        z = torch.randn(len(cb), model.dz, device=cb.device)
        xs = model.sample(cb, z)
        fl = fk_loss(fk_ctx["fk"], xs, cb, fk_ctx["reach"], fk_ctx["lower"], fk_ctx["upper"])
        stats["fk"] = fl.mean()
        loss = loss + fkw * fl.mean()
    return loss, per, stats


def _eval_nll(model, x, c, tcfg, bs=8192) -> float:
    """Validation NLL (flow) or negative ELBO (cVAE), per sample, fixed noise."""
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(123)
    tot, n = 0.0, 0
    with torch.no_grad():
        torch.manual_seed(123)
        for s in range(0, len(x), bs):
            _, per, _ = _batches_loss(model, x[s:s + bs], c[s:s + bs], tcfg, 10 ** 9, None, gen)
            tot += float(per.sum())
            n += len(per)
    model.train()
    return tot / max(n, 1)


def save_checkpoint(path: Path, model, spec: dict, extra: dict | None = None) -> None:
    """Save state dict, constructor spec and extras to ``path``."""
    torch.save({"spec": spec, "state_dict": model.state_dict(), "extra": extra or {}}, path)


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from :func:`save_checkpoint`; returns ``(model, checkpoint)``."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    s = ck["spec"]
    model = build_model(s["family"], s["dx"], s["dc"], s["params"], seed=s["seed"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


def train_from_config(config_path: str, out_dir: str, overrides: dict | None = None,
                      log: Log = print) -> dict:
    """Train, evaluate and export one model from a config file.

    Args:
        config_path: ``config/train_*.yaml``.
        out_dir: output folder (created): ``checkpoint.pt``, ``metrics.csv``,
            ``loss.png``, ``donut.png``, ``model.onnx``, ``result.json``.
        overrides: dotted or nested config overrides.
        log: line logger.

    Returns:
        Dict with ``metrics`` (evaluation), ``val_nll``, ``epochs``, ``wall_s`` and
        the paths written.

    Raises:
        ConfigError: bad config.
    """
    t_start = time.time()
    cfg = apply_overrides(load_config(config_path), overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed", 0))
    tcfg = dict(cfg.get("train", {}) or {})
    mcfg = dict(cfg.get("model", {}) or {})
    family = mcfg.get("family")
    if family not in ("flow", "cvae", "manifold_flow"):
        raise ConfigError(f"model.family must be flow, cvae or manifold_flow, got {family!r}")
    threads = int(tcfg.get("threads", 0) or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    set_seed(seed)
    device = select_device(str(tcfg.get("device", "auto")))
    log(f"device: {device}; config {config_path}; out {out}")

    tr, va, meta = get_data(cfg, out, log)
    key = target_key(family)
    if key not in tr:
        raise ConfigError(f"data source {meta['source']!r} has no {key!r} array for {family}")
    dx, dc = tr[key].shape[1], tr["cond"].shape[1]
    params = {k: v for k, v in mcfg.items() if k != "family"}
    spec = {"family": family, "dx": int(dx), "dc": int(dc), "params": params, "seed": seed}
    model = build_model(family, dx, dc, params, seed=seed)
    model.cond_norm.fit(tr["cond"])
    model.x_norm.fit(tr[key])
    # Floor each output's scale at its dequantization noise: a column that is constant in
    # the data (a branch never seen) would otherwise keep the 1e-3 floor and blow the noise
    # up a thousandfold in normalized space.
    noise = np.array(np.broadcast_to(np.asarray(tcfg.get("noise_std", 0.0), float), (dx,)))
    with torch.no_grad():
        model.x_norm.std.copy_(torch.maximum(model.x_norm.std,
                                             torch.as_tensor(noise, dtype=torch.float32)))
    model.to(device)

    X = torch.as_tensor(tr[key], dtype=torch.float32, device=device)
    C = torch.as_tensor(tr["cond"], dtype=torch.float32, device=device)
    W = torch.as_tensor(tr.get("weight", np.ones(len(X))), dtype=torch.float32)
    Xv = torch.as_tensor(va[key], dtype=torch.float32, device=device)
    Cv = torch.as_tensor(va["cond"], dtype=torch.float32, device=device)
    rt = normalization_round_trip(model, Cv, Xv)
    log(f"normalization round trip: cond {rt['roundtrip_cond']:.2e}, x {rt['roundtrip_x']:.2e}")

    fk_ctx = None
    if float(tcfg.get("fk_weight", 0.0)) > 0 and family != "manifold_flow" and "robot" in meta:
        r = meta["robot"]
        fk_ctx = {"fk": TorchFK(r).to(device), "reach": r.config.reach_m,
                  "lower": torch.tensor(r.lower[3:], dtype=torch.float32, device=device),
                  "upper": torch.tensor(r.upper[3:], dtype=torch.float32, device=device)}

    bs = int(tcfg.get("batch_size", 1024))
    max_epochs = int(tcfg.get("max_epochs", 20))
    spe = int(tcfg.get("steps_per_epoch", 0) or max(1, len(X) // bs))
    total = max_epochs * spe
    lr = float(tcfg.get("lr", 1e-3))
    opt = torch.optim.AdamW(model.parameters(), lr=lr,
                            weight_decay=float(tcfg.get("weight_decay", 1e-5)))
    warm = min(500, total // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))) + 0.01)
    clip = float(tcfg.get("grad_clip", 10.0))
    patience = int(tcfg.get("patience", 5))
    budget = float(tcfg.get("time_budget_s", 0) or 0)
    progress = bool(tcfg.get("progress", True))
    gen = torch.Generator(device=device).manual_seed(seed)

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    csv_path, ck_path = out / "metrics.csv", out / "checkpoint.pt"
    rows: list[dict] = []
    best, best_epoch, step = float("inf"), -1, 0
    for epoch in range(max_epochs):
        model.train()
        idx = torch.multinomial(W, spe * bs, replacement=True,
                                generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        it = range(spe)
        if progress and tqdm is not None:
            it = tqdm(it, desc=f"epoch {epoch}", leave=False, mininterval=2.0)
        acc: dict[str, float] = {"loss": 0.0, "gn_pre": 0.0, "gn_post": 0.0, "gn_pre_max": 0.0}
        extra_acc: dict[str, float] = {}
        for i in it:
            b = idx[i * bs:(i + 1) * bs].to(device)
            loss, _, stats = _batches_loss(model, X[b], C[b], tcfg, step, fk_ctx, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
            if not math.isfinite(gn):
                log(f"non-finite gradient at step {step}; skipping the step")
                continue
            opt.step()
            sched.step()
            step += 1
            acc["loss"] += float(loss.detach())
            acc["gn_pre"] += gn
            acc["gn_post"] += min(gn, clip)
            acc["gn_pre_max"] = max(acc["gn_pre_max"], gn)
            for k, v in stats.items():
                extra_acc[k] = extra_acc.get(k, 0.0) + float(v.detach())
        row: dict[str, float] = {"epoch": epoch, "step": step, "lr": sched.get_last_lr()[0],
                                 "train_loss": acc["loss"] / spe,
                                 "grad_norm_pre_clip": acc["gn_pre"] / spe,
                                 "grad_norm_post_clip": acc["gn_post"] / spe,
                                 "grad_norm_pre_clip_max": acc["gn_pre_max"]}
        row.update({f"train_{k}": v / spe for k, v in extra_acc.items()})
        row["val_nll"] = _eval_nll(model, Xv, Cv, tcfg)
        nb = min(4096, len(Xv))
        row.update(health(model, model.x_norm(Xv[:nb]), model.cond_norm(Cv[:nb])))
        row.update(conditioning_sensitivity(model.cpu(), Cv[:nb].cpu()))
        model.to(device)
        row["wall_s"] = time.time() - t_start
        rows.append(row)
        log(f"epoch {epoch}: train {row['train_loss']:.4f} val {row['val_nll']:.4f} "
            f"gn {row['grad_norm_pre_clip']:.2f} sens {row['sens_height']:.4f} "
            f"({row['wall_s']:.0f}s)")
        _write_csv(csv_path, rows)
        if row["val_nll"] < best - 1e-4:
            best, best_epoch = row["val_nll"], epoch
            save_checkpoint(ck_path, model, spec, {"epoch": epoch, "val_nll": best})
        elif epoch - best_epoch >= patience:
            log(f"early stop at epoch {epoch}: best val {best:.4f} at epoch {best_epoch}")
            break
        if budget and time.time() - t_start > budget:
            log(f"time budget {budget:.0f}s reached after epoch {epoch}")
            break
    train_wall = time.time() - t_start
    model, _ = load_checkpoint(ck_path)
    model.eval()
    result: dict[str, Any] = {"family": family, "epochs": len(rows), "best_epoch": best_epoch,
                              "val_nll": best, "train_wall_s": train_wall,
                              "device": str(device), "checkpoint": str(ck_path),
                              "metrics_csv": str(csv_path), "roundtrip": rt}
    result["sensitivity"] = conditioning_sensitivity(model, Cv[:4096].cpu())
    ecfg = cfg.get("eval", {}) or {}
    metrics = evaluate_trained(model, va, meta, ecfg, seed, log)
    metrics["val_nll"] = best
    result["metrics"] = metrics
    try:
        result["plots"] = make_plots(out, rows, model, va, meta, seed)
    except Exception as e:  # plotting must never lose a trained model
        log(f"plotting failed: {e!r}")
    xcfg = cfg.get("export", {}) or {}
    if xcfg.get("onnx", True):
        from .export import export_onnx, metadata_for

        md = metadata_for(model, meta, metrics, cfg, seed)
        onnx_path = out / xcfg.get("name", "model.onnx")
        export_onnx(model, onnx_path, md)
        result["onnx"] = str(onnx_path)
        result["onnx_bytes"] = onnx_path.stat().st_size
    result["wall_s"] = time.time() - t_start
    (out / "result.json").write_text(json.dumps(result, indent=2, default=float))
    log(f"done in {result['wall_s']:.1f}s: " + json.dumps(metrics, default=float))
    return result


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def evaluate_trained(model, va: dict, meta: dict, ecfg: dict, seed: int, log: Log) -> dict:
    """Evaluate a trained model on the validation grasps (held out from training)."""
    from .evaluate import evaluate_lekiwi, evaluate_toy, torch_sampler

    G = min(int(ecfg.get("n_grasps", 200)), len(va["cond"]))
    ns = int(ecfg.get("n_samples", 256))
    sampler = torch_sampler(model)
    if meta["source"] == "toy_v2":
        return evaluate_toy(sampler, meta["toy"], va["cond"].shape[1], G, ns, model.dz, seed)
    if "T_grasp" not in va:
        log("no T_grasp in the data: skipping the FK evaluation")
        return {}
    out = "manifold_coords" if meta["source"] == "lekiwi_manifold" else "stance_features"
    return evaluate_lekiwi(sampler, va["cond"][:G], va["T_grasp"][:G], meta["robot"], ns,
                           model.dz, seed, output=out, manifold=meta.get("manifold"))


def make_plots(out: Path, rows: list[dict], model, va: dict, meta: dict, seed: int) -> list[str]:
    """Loss curves and a top-down donut of sampled base positions for 4 grasps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ep = [r["epoch"] for r in rows]
    ax[0].plot(ep, [r["train_loss"] for r in rows], label="train")
    ax[0].plot(ep, [r["val_nll"] for r in rows], label="val NLL / -ELBO")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    ax[1].plot(ep, [r["grad_norm_pre_clip"] for r in rows], label="grad norm pre clip")
    ax[1].plot(ep, [r["grad_norm_post_clip"] for r in rows], label="post clip")
    ax[1].set_yscale("log")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=80)
    plt.close(fig)
    paths.append(str(out / "loss.png"))
    if meta["source"] == "toy_v2" or "T_grasp" not in va:
        return paths
    from .evaluate import sample_grasps, torch_sampler

    rng = np.random.default_rng(seed)
    G = min(4, len(va["cond"]))
    x = sample_grasps(torch_sampler(model), va["cond"][:G], 512, model.dz, rng)
    robot = meta["robot"]
    T = va["T_grasp"][:G]
    fig, axes = plt.subplots(1, G, figsize=(4 * G, 4))
    for g in range(G):
        a = np.atleast_1d(axes)[g]
        Tg = np.repeat(T[g:g + 1], 512, axis=0)
        if meta["source"] == "lekiwi_manifold":
            from ..core.onnx_sampler import decode_manifold_output

            pan, lift, br = decode_manifold_output(x[g].astype(float), robot.lower[3:5],
                                                   robot.upper[3:5])
            q, ok = meta["manifold"].solve(Tg, pan, lift, br)
            q = q[ok]
            Tg = Tg[ok]
        else:
            from ..core.canonical import StanceCodec

            codec = StanceCodec(robot.config.reach_m, robot.lower[3:], robot.upper[3:])
            q = codec.decode(x[g].astype(float), Tg)
        try:  # the exact visible feasible set (core.manifold), when the solver applies
            from ..core.manifold import StanceManifold
            from ..core.visibility import Visibility

            man = meta.get("manifold") or StanceManifold(robot)
            gt = man.ground_truth(T[g], visibility=Visibility(robot))
            a.scatter(gt["q"][:, 0] - T[g, 0, 3], gt["q"][:, 1] - T[g, 1, 3], s=1,
                      c="0.8", label="exact feasible (visible)")
        except Exception:  # noqa: BLE001 - the plot is optional
            pass
        a.scatter(q[:, 0] - Tg[:, 0, 3], q[:, 1] - Tg[:, 1, 3], s=2, alpha=0.4,
                  label="model samples")
        a.set_xlabel("base x - grasp x (m)")
        a.set_ylabel("base y - grasp y (m)")
        if g == 0:
            a.legend(loc="best", fontsize=7)
        a.plot([0], [0], "r*", ms=12)
        a.set_aspect("equal")
        a.set_title(f"grasp {g}: z={T[g, 2, 3]:.2f} m")
    fig.tight_layout()
    fig.savefig(out / "donut.png", dpi=80)
    plt.close(fig)
    paths.append(str(out / "donut.png"))
    return paths


__all__ = ["train_from_config", "load_config", "apply_overrides", "select_device",
           "load_checkpoint", "save_checkpoint", "builtin_lekiwi_dataset", "get_data"]
