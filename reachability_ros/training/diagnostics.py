"""Training diagnostics: the FK regularizer and the health metrics of seed 000 / 004.

* :func:`fk_loss`: FK error of sampled stance features (seed 000 section 6.3 (3)).
* :func:`conditioning_sensitivity`: do the samples follow the condition (seed 004
  section 4.3)?
* :func:`normalization_round_trip`: both feature-group normalizers invert (section 4.4).
* :func:`health`: latent statistics of a flow, per-dimension KL of a cVAE (seed 000
  section 5.3), the generated-to-data scale ratio of flow matching (seed 004 section
  4.2), the weights, entropies and conditioning of a mixture.
* :func:`integrator_sweep`: a flow-matching model's metrics against its step count.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

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
    """Seed 004 section 4.4: max |denorm(norm(v)) - v| for both feature groups.

    A mixture normalizes its condition only (its outputs are already in [-1, 1]).
    """
    with torch.no_grad():
        out = {"roundtrip_cond": float((model.cond_norm.inverse(model.cond_norm(cond))
                                        - cond).abs().max())}
        if hasattr(model, "x_norm"):
            out["roundtrip_x"] = float((model.x_norm.inverse(model.x_norm(x)) - x).abs().max())
        return out


def health(model, x: torch.Tensor | None, cond: torch.Tensor) -> dict:
    """Family health metrics on a validation batch of raw outputs and conditions.

    Flow: latent and log-determinant statistics, inverse reconstruction (seed 000,
    section 5.3.3). cVAE: KL per latent dimension, active dimensions (5.3.2). Flow
    matching: per-dimension std of generated samples over that of the data, both
    normalized (seed 004 section 4.2's scale check; 1 is right), and the velocity's
    size at the data (``t = 1``). Mixture (``x`` unused): weight entropy, components in
    use, component entropy, largest covariance condition number before its bound and
    the share of bounded covariances.
    """
    out: dict[str, float] = {}
    cn = model.cond_norm(cond)
    with torch.no_grad():
        if isinstance(model, ConditionalFlow):
            xn = model.x_norm(x)
            z, ld = model.forward_normalized(xn, cn)
            rec = model.inverse_normalized(z, cn)
            out.update(z_mean=float(z.mean()), z_var=float(z.var()),
                       z_sq_mean=float((z ** 2).mean()), z_norm_mean=float(z.norm(dim=1).mean()),
                       logdet_mean=float(ld.mean()), logdet_std=float(ld.std()),
                       logdet_min=float(ld.min()), logdet_max=float(ld.max()),
                       inv_recon_err=float((rec - xn).abs().max()))
        elif isinstance(model, ConditionalVAE):
            xn = model.x_norm(x)
            mu, logvar = model.encode_normalized(xn, cn)
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).mean(0)
            for i, k in enumerate(kl.tolist()):
                out[f"kl_dim{i}"] = k
            out.update(mu_abs_mean=float(mu.abs().mean()), logvar_mean=float(logvar.mean()),
                       active_dims=float((kl > 0.01).sum()))
        elif model.family in ("cfm", "manifold_cfm"):
            xn = model.x_norm(x)
            g = torch.Generator().manual_seed(0)
            gen = model.integrate(torch.randn(xn.shape, generator=g), cn)
            spread = xn.std(0) > 0.05  # a column constant in the data has no scale to match
            ratio = (gen.std(0) / xn.std(0).clamp_min(1e-6))[spread]
            v1 = model.velocity(xn, torch.ones(1, 1), model.velocity.condition(cn))
            out.update(scale_ratio_mean=float(ratio.mean()), scale_ratio_min=float(ratio.min()),
                       scale_ratio_max=float(ratio.max()),
                       mean_shift=float((gen.mean(0) - xn.mean(0)).abs().max()),
                       velocity_at_data=float(v1.norm(dim=1).mean()))
        elif model.family == "manifold_gmm":
            p = model.components(cn)
            w = torch.exp(p["log_w"])
            used = w.mean(0)
            out.update(weight_entropy=float(-(w * p["log_w"]).sum(1).mean()),
                       components_used=float((used > 1e-3).sum()),
                       component_entropy=float((w * model.entropy(p)).sum(1).mean()),
                       cond_max=float(p["cond"].max()),
                       cov_bounded=float((p["offset"] > 0).float().mean()))
    return out


def integrator_sweep(model, evaluate: Callable[[torch.nn.Module], dict],
                     steps: Sequence[int], log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate a flow-matching model with every step count and both integrators.

    Seed 004 integrated with 50 Euler steps; the exported graph unrolls the integrator,
    so its step count is a latency decision made from this table.

    Args:
        model: a :class:`~.flow_matching.ConditionalFlowMatching` (restored afterwards).
        evaluate: ``model -> metrics`` (the trainer's held-out evaluation).
        steps: step counts.
        log: progress lines.

    Returns:
        One dict per (integrator, steps): ``integrator``, ``n_steps``,
        ``velocity_evals`` per sample, ``sample_ms_per_1k`` (torch, 1,000 samples, one
        thread as configured) and the metrics.
    """
    keep = (model.n_steps, model.integrator)
    rows = []
    cond = torch.zeros(1000, model.dc) + model.cond_norm.mean
    z = torch.randn(1000, model.dz, generator=torch.Generator().manual_seed(0))
    try:
        for integ in ("euler", "midpoint"):
            for n in steps:
                model.n_steps, model.integrator = int(n), integ
                with torch.no_grad():
                    t = time.perf_counter()
                    model.sample(cond, z)
                    ms = (time.perf_counter() - t) * 1e3
                m = evaluate(model)
                rows.append({"integrator": integ, "n_steps": int(n),
                             "velocity_evals": int(n) * (1 if integ == "euler" else 2),
                             "sample_ms_per_1k": ms, **m})
                shown = ("frac_good_20mm_5deg", "pos_err_mm_median", "gt_kl_mean",
                         "gt_coverage_gap_rad_mean")
                log(f"integrator {integ} x {n}: "
                    + ", ".join(f"{k} {m[k]:.4g}" for k in shown if k in m))
    finally:
        model.n_steps, model.integrator = keep
    return rows
