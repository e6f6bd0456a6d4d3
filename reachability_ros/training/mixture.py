"""Amortized Gaussian mixture over the manifold coordinates, trained by reverse KL (torch).

:class:`ConditionalMixture` maps a grasp's condition features to a mixture over the
LeKiwi's manifold coordinates ``(pan_n, lift_n, branch)``: ``n_components`` Gaussian
components per branch over the normalized (pan, lift) with full 2 x 2 covariances, and
mixture weights, all predicted from the condition. Each component has its own small MLP
(a mixture of experts; seed 001 section 5.3.4 found a shared encoder slower and
worse); the weights come from a gating MLP.

**Sampling contract** (the exported graph ``(cond [B, 7], z [B, 3]) -> y [B, 6]``): ``z``
is standard normal. ``u = Phi(z_0)`` (the normal CDF) is uniform on (0, 1) and picks the
component through the mixture's CDF (component ``k`` when ``sum_{j<k} w_j <= u <
sum_{j<=k} w_j``); ``(z_1, z_2)`` is the Gaussian draw, ``(pan_n, lift_n) = mu_k + L_k
(z_1, z_2)`` with ``L_k`` the Cholesky factor of the component's covariance. The output
is the manifold-coordinate vector of the other manifold models: ``(pan_n, lift_n)`` then
one score per branch, +1 for the component's branch and -1 for the others, decoded by
``core.onnx_sampler.decode_manifold_output``.

**Training** (:class:`ReverseKL`): the mixture minimizes ``KL(q(.|c) || p(.|c))`` toward
an unnormalized target ``log p = beta * quality`` on the grasp's feasible stances (the
ranking's quality terms, ``training/target.py``), which is mode-seeking: the samples go
to the good stances rather than to all of them. The objective is the amortized VIPS
lower bound (seed 001 section 3.1; Arenz et al. 2018, "Efficient Gradient-Free
Variational Inference using Policy Search"): with the responsibilities ``q~(k | y)`` of a
reference copy of the model refreshed every ``e_step_interval`` steps (E-step),

    L(c) = sum_k w_k(c) [ E_{N_k}[ log p(y) + log q~(k | y) ] + H(N_k) ] + H(w(c)),

estimated with reparameterized samples of every component; with the reference equal to the
model the bound is the ELBO and its gradient the "sticking the landing" estimator (Roeder
et al. 2017). The experts follow the bound's gradient. The gate is fitted (cross-entropy)
to the closed-form weight update of VIPS under a KL trust region, ``w* ~ w_ref^(eta /
(1 + eta)) exp(R / (1 + eta))`` with ``R`` the component rewards: the bound's own gradient
in a weight is ``w_k (R_k - sum_j w_j R_j)``, which vanishes for a component the gate has
dropped, so that a component that is the only good one for a rare kind of grasp never
comes back (``weight_update: gradient`` keeps that gradient, with a Lagrangian trust
region on the weights). Further stabilizers of seed 001 (sections 3.2-3.5), as options:
per-component trust regions on the mean and covariance parts of ``KL(N_k || N~_k)``
(Lagrange multipliers by dual ascent), each component's objective averaged with its own
normalized weights (the expectation form of context resampling), a bound on each
covariance's condition number by an eigenvalue-bound diagonal offset (Gershgorin and
trace bounds; exact in 2 x 2), and switching off the components that no training grasp
uses before the export. ``models/README.md`` says which of them mattered.

Example:
    >>> m = ConditionalMixture(dx=6, dc=7, n_components=4, hidden=32)
    >>> y = m.sample(torch.zeros(5, 7), torch.randn(5, 3))  # (5, 6)
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from ..core.errors import ConfigError
from .models import Normalizer, mlp

LOG_2PI = math.log(2.0 * math.pi)
#: clamp of the predicted log standard deviations (normalized coordinate units)
LOG_STD_RANGE = (-9.0, 2.0)
#: the largest u = Phi(z_0) used to pick a component (below 1 by more than the rounding of a
#: float32 cumulative sum, so that u never falls past the last active component)
U_MAX = 1.0 - 2.0 ** -16


class GroupedMLP(nn.Module):
    """``K`` independent MLPs ``d_in -> hidden^n_layers -> d_out`` evaluated together.

    Args:
        groups: number of MLPs ``K``.
        d_in, d_out: input and output widths.
        hidden: hidden width.
        n_layers: hidden layers.
    """

    def __init__(self, groups: int, d_in: int, d_out: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        dims = [d_in] + [hidden] * n_layers + [d_out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(groups, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(groups, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(B, K, d_out)`` of inputs ``(B, d_in)`` (the same input to every MLP).

        Computed as ``K`` batched products ``(K, B, d) @ (K, d, d')`` (one GEMM per MLP and
        layer, also in the ONNX graph), not as ``B K`` products of single rows.
        """
        h = x[None]  # (1, B, d_in), broadcast over the K MLPs
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b  # (K, B, d)
            if i < last:
                h = nn.functional.silu(h)
        return h.transpose(0, 1)


def bounded_covariance(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                       max_condition: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the diagonal offset ``s`` that bounds ``cond([[a, b], [b, c]] + s I)``, and it.

    Seed 001 section 3.5.1 (after Rajamaki et al.): with a lower bound ``l`` of the
    smallest eigenvalue and an upper bound ``h`` of the largest (Gershgorin discs, and
    the trace for the upper), ``s = max((h - kappa l) / (kappa - 1), 0)`` guarantees a
    condition number at most ``kappa``; well-conditioned matrices are left unchanged.

    Args:
        a, b, c: covariance entries (any equal shapes); the matrix is positive definite.
        max_condition: ``kappa > 1``; ``0`` = no bound (``s = 0``).

    Returns:
        ``(s, cond)``: the offsets and the condition numbers before the offset.
    """
    half_tr = 0.5 * (a + c)
    root = torch.sqrt(0.25 * (a - c) ** 2 + b * b)
    cond = (half_tr + root) / (half_tr - root).clamp_min(1e-30)
    if not max_condition:
        return torch.zeros_like(a), cond
    ab = b.abs()
    hi = torch.minimum(torch.maximum(a + ab, c + ab), a + c)
    lo = torch.minimum(a - ab, c - ab).clamp_min(0.0)
    s = ((hi - max_condition * lo) / (max_condition - 1.0)).clamp_min(0.0)
    return s, cond


class ConditionalMixture(nn.Module):
    """Gaussian mixture over manifold coordinates conditioned on the grasp.

    Args:
        dx: output dimension ``2 + n_branches``.
        dc: condition dimension.
        n_components: components per branch.
        hidden: hidden width of the expert and gating MLPs.
        n_layers: their hidden layers.
        max_condition: bound on each covariance's condition number (0 = none).
        branches: the branch of each component (overrides ``n_components``; what
            :meth:`keep` writes after pruning).
        family: name stored in the exported metadata.
    """

    def __init__(self, dx: int = 6, dc: int = 7, n_components: int = 4, hidden: int = 32,
                 n_layers: int = 2, max_condition: float = 100.0,
                 branches: list[int] | None = None, family: str = "manifold_gmm") -> None:
        super().__init__()
        nb = int(dx) - 2
        if nb < 1 or n_components < 1:
            raise ConfigError(f"a manifold mixture needs dx >= 3 (pan, lift, >= 1 branch) and "
                              f"n_components >= 1, got dx={dx}, n_components={n_components}")
        if 0.0 < max_condition <= 1.0:
            raise ConfigError(f"model.max_condition must exceed 1 (or be 0), got {max_condition}")
        if branches is None:
            branch = torch.arange(nb * int(n_components)) // int(n_components)
        else:
            branch = torch.as_tensor(list(branches), dtype=torch.long)
            if branch.ndim != 1 or not len(branch) or int(branch.min()) < 0 or int(
                    branch.max()) >= nb:
                raise ConfigError(f"mixture branches must be a non-empty list of integers in "
                                  f"[0, {nb}), got {branches!r}")
        self.dx, self.dc, self.dz = int(dx), int(dc), 3
        self.family = family
        self.n_branches = nb
        self.K = K = len(branch)
        self.hidden, self.n_layers = int(hidden), int(n_layers)
        self.max_condition = float(max_condition)
        self.cond_norm = Normalizer(dc)
        self.register_buffer("branch_of", branch)
        self.register_buffer("branch_onehot", nn.functional.one_hot(branch, nb).float())
        self.register_buffer("active", torch.ones(K))
        self.experts = GroupedMLP(K, dc, 5, hidden, n_layers)
        self.gate = mlp(dc, K, hidden, n_layers)
        with torch.no_grad():  # start: broad components spread over lift, equal weights
            self.experts.weights[-1].mul_(0.1)
            bias = torch.zeros(K, 1, 5)
            for k in range(K):
                same = (branch == branch[k]).nonzero().flatten().tolist()
                n = len(same)
                bias[k, 0, 1] = -0.6 + 1.2 * same.index(k) / (n - 1) if n > 1 else 0.0
            bias[:, 0, 2] = math.log(0.1)
            bias[:, 0, 3] = math.log(0.3)
            self.experts.biases[-1].copy_(bias)
            nn.init.zeros_(self.gate[-1].weight)
            nn.init.zeros_(self.gate[-1].bias)

    def keep(self, components: list[int]) -> "ConditionalMixture":
        """Return a copy with only ``components``: their experts, gate outputs and branches.

        The copy samples exactly as this model does with the others switched off (the
        weights of the others are 0 there), with fewer experts to evaluate.
        """
        idx = torch.as_tensor(list(components), dtype=torch.long)
        new = ConditionalMixture(self.dx, self.dc, hidden=self.hidden, n_layers=self.n_layers,
                                 max_condition=self.max_condition,
                                 branches=self.branch_of[idx].tolist(), family=self.family)
        with torch.no_grad():
            new.cond_norm.load_state_dict(self.cond_norm.state_dict())
            for w_new, w in zip(new.experts.weights, self.experts.weights):
                w_new.copy_(w[idx])
            for b_new, b in zip(new.experts.biases, self.experts.biases):
                b_new.copy_(b[idx])
            last = f"{len(self.gate) - 1}."  # the gate's output layer: one row per component
            new.gate.load_state_dict({k: v[idx] if k.startswith(last) else v
                                      for k, v in self.gate.state_dict().items()})
        return new

    # ------------------------------------------------------------ parameters
    def components(self, cn: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mixture parameters of normalized conditions ``cn (B, dc)``.

        Returns:
            ``log_w (B, K)`` (pruned components at about -1e9), ``mu (B, K, 2)``, the
            Cholesky factor ``l11, l21, l22 (B, K)`` of the bounded covariance, ``offset``
            (the diagonal offset of the bound) and ``cond`` (condition number before it).
        """
        out = self.experts(cn)  # (B, K, 5)
        logits = self.gate(cn) + (self.active - 1.0) * 1e9
        s1 = torch.exp(out[..., 2].clamp(*LOG_STD_RANGE))
        s2 = torch.exp(out[..., 3].clamp(*LOG_STD_RANGE))
        off = out[..., 4]
        a, b, c = s1 * s1, s1 * off, off * off + s2 * s2
        shift, cond = bounded_covariance(a, b, c, self.max_condition)
        l11 = torch.sqrt(a + shift)
        l21 = b / l11
        l22 = torch.sqrt((c + shift - l21 * l21).clamp_min(1e-20))
        return {"log_w": torch.log_softmax(logits, dim=1), "mu": out[..., :2], "l11": l11,
                "l21": l21, "l22": l22, "offset": shift, "cond": cond}

    @staticmethod
    def component_log_prob(u: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """``log N_k(u)`` for points ``u (B, N, 2)`` under every component: ``(B, N, K)``."""
        d = u[:, :, None, :] - p["mu"][:, None, :, :]
        e1 = d[..., 0] / p["l11"][:, None, :]
        e2 = (d[..., 1] - p["l21"][:, None, :] * e1) / p["l22"][:, None, :]
        return (-0.5 * (e1 * e1 + e2 * e2) - torch.log(p["l11"] * p["l22"])[:, None, :]
                - LOG_2PI)

    def log_prob(self, u: torch.Tensor, branch: torch.Tensor, cn: torch.Tensor,
                 p: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mixture log-density ``(B, N)`` of points ``u (B, N, 2)`` on branches ``(B, N)``.

        The density is over (pan_n, lift_n) and the discrete branch: only the components
        of the point's branch count.
        """
        p = self.components(cn) if p is None else p
        lp = self.component_log_prob(u, p) + p["log_w"][:, None, :]
        same = self.branch_of[None, None, :] == branch[:, :, None]
        return torch.logsumexp(lp.masked_fill(~same, -1e30), dim=2)

    @staticmethod
    def entropy(p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Entropy ``(B, K)`` of every Gaussian component (nats)."""
        return 1.0 + LOG_2PI + torch.log(p["l11"] * p["l22"])

    # --------------------------------------------------------------- sampling
    def sample(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Manifold coordinates ``(B, 2 + n_branches)`` from raw conditions and noise ``(B, 3)``.

        See the module docstring for how ``z`` picks the component and the Gaussian draw.
        """
        p = self.components(self.cond_norm(cond))
        w = torch.exp(p["log_w"])
        lower = torch.cumsum(w, dim=1) - w  # exclusive CDF of the components
        u = (0.5 * (1.0 + torch.erf(z[:, :1] / math.sqrt(2.0)))).clamp(max=U_MAX)
        sel = (u >= lower).to(z.dtype)  # 1 up to the chosen component, 0 after
        onehot = sel - torch.cat([sel[:, 1:], torch.zeros_like(sel[:, :1])], dim=1)
        mu = (onehot[..., None] * p["mu"]).sum(1)
        l11, l21, l22 = ((onehot * p[k]).sum(1, keepdim=True) for k in ("l11", "l21", "l22"))
        pan = mu[:, :1] + l11 * z[:, 1:2]
        lift = mu[:, 1:2] + l21 * z[:, 1:2] + l22 * z[:, 2:3]
        scores = 2.0 * (onehot @ self.branch_onehot) - 1.0
        return torch.cat([pan, lift, scores], dim=1)

    def weight_stats(self, cond: torch.Tensor, batch: int = 8192
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and largest mixture weights ``(K,)`` over raw conditions ``(N, dc)``."""
        with torch.no_grad():
            tot, top = torch.zeros(self.K), torch.zeros(self.K)
            for s in range(0, len(cond), batch):
                w = torch.exp(self.components(self.cond_norm(cond[s:s + batch]))["log_w"])
                tot += w.sum(0)
                top = torch.maximum(top, w.max(0).values)
            return tot / max(len(cond), 1), top


# ---------------------------------------------------------------- the target
def target_lookup(grids: torch.Tensor, u: torch.Tensor, branch_onehot: torch.Tensor,
                  pan_range: tuple[float, float], lift_range: tuple[float, float],
                  slope: float) -> torch.Tensor:
    """Interpolate tabulated targets at points, differentiably in the points.

    Args:
        grids: ``(B, nb, P, L)`` target values (quality units) on the nodes of
            ``linspace(pan_range, P) x linspace(lift_range, L)``, one slice per branch.
        u: ``(B, K, S, 2)`` normalized (pan, lift) points; the ``S`` points of slot ``k``
            lie on the branch of ``branch_onehot[k]``.
        branch_onehot: ``(K, nb)``.
        pan_range, lift_range: the grid's extent.
        slope: drop per unit of distance outside the grid (added to the border value).

    Returns:
        ``(B, K, S)`` bilinear interpolation (the border value, minus ``slope`` times the
        distance, outside the grid).
    """
    B, K, S, _ = u.shape
    p0, p1 = pan_range
    l0, l1 = lift_range
    gx = 2.0 * (u[..., 1] - l0) / (l1 - l0) - 1.0  # lift -> width axis
    gy = 2.0 * (u[..., 0] - p0) / (p1 - p0) - 1.0  # pan -> height axis
    g = torch.stack([gx, gy], dim=-1).reshape(B, K * S, 1, 2)
    val = nn.functional.grid_sample(grids.float(), g, mode="bilinear", padding_mode="border",
                                    align_corners=True)  # (B, nb, K S, 1)
    val = (val.view(B, -1, K, S) * branch_onehot.T[None, :, :, None]).sum(1)
    dp = torch.relu(p0 - u[..., 0]) + torch.relu(u[..., 0] - p1)
    dl = torch.relu(l0 - u[..., 1]) + torch.relu(u[..., 1] - l1)
    return val - slope * torch.sqrt(dp * dp + dl * dl + 1e-12) * ((dp + dl) > 0)


def gaussian_kl_parts(p: dict[str, torch.Tensor], q: dict[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance parts of ``KL(N_p || N_q)`` per component, each ``(B, K)``.

    Seed 001 section 3.2 (after MPO): ``KL_mu = (mu_q - mu_p)^T S_q^-1 (mu_q - mu_p) / 2``,
    ``KL_S = (log |S_q| / |S_p| + tr(S_q^-1 S_p) - 2) / 2``; they sum to the KL.
    """
    d = p["mu"] - q["mu"]
    e1 = d[..., 0] / q["l11"]
    e2 = (d[..., 1] - q["l21"] * e1) / q["l22"]
    kl_mu = 0.5 * (e1 * e1 + e2 * e2)
    # tr(S_q^-1 S_p) = || L_q^-1 L_p ||_F^2 for lower-triangular Cholesky factors
    m11 = p["l11"] / q["l11"]
    m21 = (p["l21"] - q["l21"] * m11) / q["l22"]
    m22 = p["l22"] / q["l22"]
    tr = m11 * m11 + m21 * m21 + m22 * m22
    logdet = 2.0 * (torch.log(q["l11"] * q["l22"]) - torch.log(p["l11"] * p["l22"]))
    return kl_mu, 0.5 * (logdet + tr - 2.0)


class ReverseKL:
    """The reverse-KL objective of a :class:`ConditionalMixture`, with its trust regions.

    Holds the reference model (refreshed every ``e_step_interval`` training steps) and the
    Lagrange multipliers of the trust regions.

    Args:
        model: the mixture being trained.
        cfg: a :class:`~reachability_ros.training.config.ReverseKLConfig`.
    """

    def __init__(self, model: ConditionalMixture, cfg) -> None:
        self.cfg = cfg
        self.reference: ConditionalMixture | None = None
        self.alpha_mu = torch.zeros(model.K)
        self.alpha_cov = torch.zeros(model.K)
        self.alpha_w = torch.zeros(())

    def refresh(self, model: ConditionalMixture) -> None:
        """E-step: the reference becomes a frozen copy of the model."""
        self.reference = copy.deepcopy(model).eval().requires_grad_(False)

    def bound(self, model: ConditionalMixture, ref: ConditionalMixture, grids: torch.Tensor,
              cn: torch.Tensor, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The lower bound ``L(c)`` per grasp ``(B,)`` and its parts.

        The parts: ``p`` and ``ref`` (the model's and the reference's parameters,
        :meth:`ConditionalMixture.components`) and ``reward`` ``(B, K)``, each component's
        ``E[log p(y) + log q~(k | y)] + H(N_k)``.

        Args:
            model: the mixture (its parameters get the gradients).
            ref: the reference for the responsibilities (the model itself for the ELBO).
            grids: ``(B, nb, P, L)`` target tables (quality units).
            cn: ``(B, dc)`` normalized conditions.
            generator: source of the reparameterized noise.
        """
        cfg = self.cfg
        p = model.components(cn)
        B, K = p["log_w"].shape
        eps = torch.randn((B, K, cfg.samples, 2), generator=generator, dtype=cn.dtype)
        u0 = p["mu"][:, :, None, 0] + p["l11"][:, :, None] * eps[..., 0]
        u1 = (p["mu"][:, :, None, 1] + p["l21"][:, :, None] * eps[..., 0]
              + p["l22"][:, :, None] * eps[..., 1])
        u = torch.stack([u0, u1], dim=-1)  # (B, K, S, 2): S samples of every component
        log_target = cfg.beta * target_lookup(
            grids, u, model.branch_onehot, cfg.pan_range, cfg.lift_range, cfg.infeasible_slope)
        if ref is model:
            pr = {k: v.detach() for k, v in p.items()}
        else:
            with torch.no_grad():
                pr = ref.components(cn)
        # log q~(k | u) for the samples of component k (gradient through u only)
        lp = model.component_log_prob(u.reshape(B, K * cfg.samples, 2), pr)  # (B, K S, K)
        lp = (lp + pr["log_w"][:, None, :]).view(B, K, cfg.samples, K)
        same = model.branch_of[:, None] == model.branch_of[None, :]  # (K, K)
        log_mix = torch.logsumexp(lp.masked_fill(~same[None, :, None, :], -1e30), dim=3)
        own = torch.diagonal(lp, dim1=1, dim2=3).permute(0, 2, 1)  # (B, K, S)
        log_resp = own - log_mix
        reward = (log_target + log_resp).mean(2) + model.entropy(p)  # (B, K)
        w = torch.exp(p["log_w"])
        weight_entropy = -(w * p["log_w"]).sum(1)
        return (w * reward).sum(1) + weight_entropy, {"p": p, "ref": pr, "reward": reward}

    def training_loss(self, model: ConditionalMixture, grids: torch.Tensor, cn: torch.Tensor,
                      step: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Loss to minimize, per-grasp negative bound ``(B,)`` and logged statistics."""
        cfg = self.cfg
        if self.reference is None or step % cfg.e_step_interval == 0:
            self.refresh(model)
        ref = self.reference
        bound, parts = self.bound(model, ref, grids, cn, generator)
        p, pr, reward = parts["p"], parts["ref"], parts["reward"]
        w = torch.exp(p["log_w"])
        if cfg.weight_update == "closed_form":
            # the gate regresses (cross-entropy) onto the closed-form optimum of
            # sum_k w_k R_k + H(w) - eta KL(w || w_ref): w* ~ w_ref^(eta/(1+eta)) exp(R/(1+eta))
            # (VIPS, seed 001 section 2.2 with a trust region); unlike the bound's gradient,
            # w_k (R_k - sum_j w_j R_j), it does not vanish where a weight is near 0
            eta = cfg.weight_eta
            target = torch.softmax((eta * pr["log_w"] + reward.detach()) / (eta + 1.0), dim=1)
            gate = -(target * p["log_w"]).sum(1).mean()
        else:
            gate = -((w * reward.detach()).sum(1) - (w * p["log_w"]).sum(1)).mean()
        if cfg.component_normalization:
            # each component's reward averaged over the grasps with its own normalized
            # weights (seed 001 section 3.3: a component's objective is an expectation over
            # q(c | k) = q(k | c) p(c) / q(k)), so that a component with a small mean weight
            # keeps learning where the gate picks it
            wn = (w / w.mean(0, keepdim=True).clamp_min(1e-12)).detach()
            experts = -(wn * reward).sum(1).mean() / model.K
        else:
            experts = -(w.detach() * reward).sum(1).mean()
        loss = gate + experts
        kl_mu, kl_cov = gaussian_kl_parts(p, pr)
        w_ref = torch.exp(pr["log_w"])
        norm = w_ref.sum(0).clamp_min(1e-12)
        kl_mu_k = (w_ref * kl_mu).sum(0) / norm  # (K,) weighted over the grasps
        kl_cov_k = (w_ref * kl_cov).sum(0) / norm
        kl_w = (torch.exp(p["log_w"]) * (p["log_w"] - pr["log_w"])).sum(1).mean()
        stats = {"kl_mean": (kl_mu_k * norm).sum() / norm.sum(),
                 "kl_cov": (kl_cov_k * norm).sum() / norm.sum(), "kl_weights": kl_w}
        # trust regions (Lagrangian): dual ascent on the relative violation KL / eps - 1,
        # clipped to [-1, 10] so that one noisy batch cannot blow a multiplier up (seed 001
        # section 3.2.2: a step too large makes the multipliers diverge)
        eps_w = cfg.eps_weights if cfg.weight_update == "gradient" else 0.0
        for name, kl, eps in (("mu", kl_mu_k, cfg.eps_mean), ("cov", kl_cov_k, cfg.eps_cov),
                              ("w", kl_w, eps_w)):
            if eps > 0:
                alpha = getattr(self, f"alpha_{name}")
                loss = loss + (alpha * kl).sum()
                violation = (kl.detach() / eps - 1.0).clamp(-1.0, 10.0)
                setattr(self, f"alpha_{name}", (alpha + cfg.dual_lr * violation).clamp(min=0.0))
                stats[f"alpha_{name}"] = alpha.mean()
        stats["entropy_w"] = -(torch.exp(p["log_w"]) * p["log_w"]).sum(1).mean()
        stats["cov_offset"] = (p["offset"] > 0).float().mean()
        return loss, -bound.detach(), {k: v.detach() for k, v in stats.items()}
