"""Training diagnostics: the FK regularizer and the health metrics of seed 000 / 004.

* :func:`fk_loss`: FK error of sampled stance features (seed 000 section 6.3 (3)).
* :func:`conditioning_sensitivity`: do the samples follow the condition (seed 004
  section 4.3)?
* :func:`normalization_round_trip`: both feature-group normalizers invert (section 4.4).
* :func:`health`: latent statistics of a flow, per-dimension KL of a cVAE (seed 000
  section 5.3).
"""

from __future__ import annotations

import torch

from .models import ConditionalFlow, ConditionalVAE, TorchFK


def fk_loss(fk: TorchFK, x: torch.Tensor, cond: torch.Tensor, reach: float,
            lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """FK regularizer (seed 000, section 6.3 (3)) on raw stance features, ``(B,)``.

    The grasp in its canonical frame is ``(0, 0, c0 R)`` with the rotation's first
    two columns ``c[1:4]``, ``c[4:7]``; the stance is decoded in that frame.
    """
    q = torch.cat([x[:, :2] * reach, torch.atan2(x[:, 3], x[:, 2])[:, None],
                   0.5 * (x[:, 4:] * (upper - lower) + (upper + lower))], dim=1)
    T = fk(q)
    dz = T[:, 2, 3] - cond[:, 0] * reach
    p_err = (T[:, 0, 3] ** 2 + T[:, 1, 3] ** 2 + dz ** 2) / reach ** 2
    r_err = ((T[:, :3, 0] - cond[:, 1:4]) ** 2).sum(1) + ((T[:, :3, 1] - cond[:, 4:7]) ** 2).sum(1)
    return p_err + r_err


def conditioning_sensitivity(model, cond: torch.Tensor, delta: float = 0.1) -> dict:
    """Seed 004 section 4.3: mean |change| of samples (same z) when one condition moves.

    Perturbs the height feature by ``delta`` (``0.1 R``) and, separately, rotates
    the condition to another held-out grasp's; reports the mean absolute change
    of the raw outputs and, for scale, their spread.
    """
    # a constant condition (toy v2.1) keeps the normalizer's 1e-3 floor (float32: 1.00000005e-3)
    if float(model.cond_norm.std.max()) <= 1.001e-3:
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
