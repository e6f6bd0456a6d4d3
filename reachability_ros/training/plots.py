"""Plots of a training run: loss curves and a top-down "donut" of sampled base positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import ReachabilityError


def make_plots(out: Path, rows: list[dict], model, va: dict, meta: dict,
               seed: int) -> list[str]:
    """Write ``loss.png`` and (LeKiwi) ``donut.png``; return the paths written.

    Args:
        out: output folder.
        rows: per-epoch rows of ``metrics.csv`` (``epoch``, ``train_loss``, ``val_nll``,
            ``grad_norm_pre_clip``, ``grad_norm_post_clip``).
        model: the trained model.
        va: held-out arrays (``cond``, ``T_grasp``).
        meta: the trainer's data meta (``source``, ``robot``, ``manifold``).
        seed: noise seed of the samples.
    """
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
    ax[1].set_xlabel("epoch")
    ax[1].set_yscale("log")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=80)
    plt.close(fig)
    paths.append(str(out / "loss.png"))
    if meta["source"] == "toy_v2" or "T_grasp" not in va:
        return paths
    paths.append(_donut(out, model, va, meta, seed, plt))
    return paths


def _donut(out: Path, model, va: dict, meta: dict, seed: int, plt) -> str:
    """Base positions of 512 samples around each of 4 held-out grasps, with the exact set."""
    from ..core.onnx_sampler import FAMILY_OUTPUT
    from ..core.visibility import Visibility
    from ..evaluation.ground_truth import ground_truth
    from .evaluate import decode_samples, sample_grasps, torch_sampler

    rng = np.random.default_rng(seed)
    G = min(4, len(va["cond"]))
    x = sample_grasps(torch_sampler(model), va["cond"][:G], 512, model.dz, rng)
    robot = meta["robot"]
    vis = Visibility(robot)
    T = va["T_grasp"][:G]
    manifold = meta.get("manifold")
    if manifold is None:
        try:
            from ..core.manifold import StanceManifold
            manifold = StanceManifold(robot)
        except ReachabilityError:  # not this structure: no exact set to draw
            manifold = None
    fig, axes = plt.subplots(1, G, figsize=(4 * G, 4))
    for g in range(G):
        a = np.atleast_1d(axes)[g]
        Tg = np.repeat(T[g:g + 1], 512, axis=0)
        q, ok = decode_samples(x[g], Tg, robot, FAMILY_OUTPUT[model.family], manifold)
        q, Tg = q[ok], Tg[ok]
        if manifold is not None:
            gt = ground_truth(manifold, T[g], visibility=vis)
            a.scatter(gt["q"][:, 0] - T[g, 0, 3], gt["q"][:, 1] - T[g, 1, 3], s=1,
                      c="0.8", label="exact feasible (visible)")
        a.scatter(q[:, 0] - Tg[:, 0, 3], q[:, 1] - Tg[:, 1, 3], s=2, alpha=0.4,
                  label="model samples")
        a.plot([0], [0], "r*", ms=12, label="grasp")
        a.set_xlabel("base x - grasp x (m)")
        a.set_ylabel("base y - grasp y (m)")
        if g == 0:
            a.legend(loc="best", fontsize=7)
        a.set_aspect("equal")
        a.set_title(f"grasp {g}: z = {T[g, 2, 3]:.2f} m")
    fig.tight_layout()
    fig.savefig(out / "donut.png", dpi=80)
    plt.close(fig)
    return str(out / "donut.png")
