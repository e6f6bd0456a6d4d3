"""Generative stance models (torch): conditional flow, conditional VAE, nearest neighbour.

(Conditional flow matching is in :mod:`.flow_matching`, the amortized Gaussian mixture in
:mod:`.mixture`; :func:`build_model` builds every family.)

Every model maps a RAW condition ``cond (B, dc)`` and caller-supplied noise
``z (B, dz)`` to RAW output features ``x (B, dx)`` through :meth:`sample`, a pure
function, so the ONNX graph is ``(cond, z) -> x`` with nothing random inside.
The normalization statistics of the two feature groups (condition and output)
are separate buffers of the model (seed 004, section 5: one shared set of
statistics silently rescaled one group by the other's spread), so they travel
inside the checkpoint and the exported graph.

* :class:`ConditionalFlow` - cINN (seed 000, section 5.3.3): fixed permutations
  and GLOW-style affine coupling blocks with soft clamping; the condition is
  concatenated to the input of every coupling subnet; the subnet is injected as
  ``subnet_constructor(c_in, c_out)`` as FrEIA does.
* :class:`ConditionalVAE` - seed 000, section 5.3.2 / 7.2: MLP encoder and
  Gaussian MLP decoder; KL annealing and free bits against posterior collapse
  are applied by the trainer through :meth:`ConditionalVAE.loss`.
* :class:`NearestNeighbour` - seed 000, section 6.3 (1): returns the stance of a
  training condition among the ``k`` nearest, chosen by the noise.
* :class:`TorchFK` - differentiable FK of the whole-body model built from its
  joint placements, for the optional FK regularizer (seed 000, section 6.3 (3)).

References:
    Ardizzone et al., "Guided Image Generation with Conditional Invertible Neural
    Networks", 2019 (cINN). Dinh et al., "Density estimation using Real NVP", 2017
    (affine coupling). Kingma and Dhariwal, "Glow", 2018 (double coupling). Sohn et
    al., "Learning Structured Output Representation using Deep Conditional Generative
    Models", 2015 (CVAE). Kingma et al., "Improved Variational Inference with Inverse
    Autoregressive Flow", 2016 (free bits). Bowman et al., "Generating Sentences from a
    Continuous Space", 2016 (KL annealing).

Example:
    >>> flow = ConditionalFlow(dx=9, dc=7, n_blocks=4, hidden=64)
    >>> x = flow.sample(torch.zeros(5, 7), torch.randn(5, 9))  # (5, 9)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..core.errors import ConfigError, InvalidRequest

SubnetConstructor = Callable[[int, int], nn.Module]


def mlp_subnet(hidden: int = 192, n_layers: int = 2) -> SubnetConstructor:
    """Return a FrEIA-style subnet constructor ``(c_in, c_out) -> nn.Module``.

    The last layer starts at zero, so every coupling block starts as the identity.

    Args:
        hidden: hidden width.
        n_layers: number of hidden layers (>= 1).
    """
    if hidden < 1 or n_layers < 1:
        raise ConfigError(f"subnet needs hidden >= 1 and n_layers >= 1, got {hidden}, {n_layers}")

    def build(c_in: int, c_out: int) -> nn.Module:
        layers: list[nn.Module] = []
        d = c_in
        for _ in range(n_layers):
            layers += [nn.Linear(d, hidden), nn.SiLU()]
            d = hidden
        last = nn.Linear(d, c_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        return nn.Sequential(*layers)

    return build


def mlp(d_in: int, d_out: int, hidden: int, n_layers: int) -> nn.Sequential:
    """Plain MLP ``d_in -> hidden^n_layers -> d_out`` with SiLU activations."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Per-feature affine normalization of one feature group, stored as buffers.

    Args:
        dim: feature dimension.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, data: np.ndarray | torch.Tensor, min_std: float = 1e-3) -> None:
        """Set mean and std from ``(N, dim)`` data; std is floored at ``min_std``."""
        t = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        if t.ndim != 2 or t.shape[1] != self.mean.numel():
            raise InvalidRequest(f"normalizer of dim {self.mean.numel()} got data of shape "
                                 f"{tuple(t.shape)}")
        self.mean.copy_(t.mean(0).to(self.mean.dtype))
        self.std.copy_(t.std(0).clamp_min(min_std).to(self.std.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize raw features."""
        return (x - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Raw features from normalized ones."""
        return y * self.std + self.mean

    def log_abs_det(self) -> torch.Tensor:
        """``log |det d(normalized)/d(raw)|``, a constant."""
        return -torch.log(self.std).sum()


class AffineCoupling(nn.Module):
    """GLOW-style double affine coupling with soft clamping and concatenated condition.

    ``x = (x1, x2)``; ``y2 = x2 * exp(s2(x1, c)) + t2(x1, c)`` then
    ``y1 = x1 * exp(s1(y2, c)) + t1(y2, c)``, with every log-scale soft-clamped to
    ``(-clamp, clamp)`` by ``clamp * tanh(s / clamp)``.

    Args:
        dim: feature dimension (>= 2).
        dc: condition dimension.
        subnet_constructor: ``(c_in, c_out) -> nn.Module``.
        clamp: soft clamp of the log-scales.
    """

    def __init__(self, dim: int, dc: int, subnet_constructor: SubnetConstructor,
                 clamp: float = 2.0) -> None:
        super().__init__()
        if dim < 2:
            raise ConfigError(f"a coupling block needs dim >= 2, got {dim}")
        self.d1 = dim // 2
        self.d2 = dim - self.d1
        self.clamp = float(clamp)
        self.net2 = subnet_constructor(self.d1 + dc, 2 * self.d2)
        self.net1 = subnet_constructor(self.d2 + dc, 2 * self.d1)

    def _st(self, net: nn.Module, h: torch.Tensor, c: torch.Tensor, d: int):
        out = net(torch.cat([h, c], dim=1))
        s, t = out[:, :d], out[:, d:]
        return self.clamp * torch.tanh(s / self.clamp), t

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent direction; returns ``(y, log|det J|)`` with shapes (B, dim), (B,)."""
        x1, x2 = x[:, :self.d1], x[:, self.d1:]
        s2, t2 = self._st(self.net2, x1, c, self.d2)
        y2 = x2 * torch.exp(s2) + t2
        s1, t1 = self._st(self.net1, y2, c, self.d1)
        y1 = x1 * torch.exp(s1) + t1
        return torch.cat([y1, y2], dim=1), s1.sum(1) + s2.sum(1)

    def inverse(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Latent -> data direction."""
        y1, y2 = y[:, :self.d1], y[:, self.d1:]
        s1, t1 = self._st(self.net1, y2, c, self.d1)
        x1 = (y1 - t1) * torch.exp(-s1)
        s2, t2 = self._st(self.net2, x1, c, self.d2)
        x2 = (y2 - t2) * torch.exp(-s2)
        return torch.cat([x1, x2], dim=1)


class ConditionalFlow(nn.Module):
    """Conditional normalizing flow (cINN): ``z = f(x; c)``, ``x = f^-1(z; c)``.

    Args:
        dx: output (data) dimension; also the latent dimension ``dz``.
        dc: condition dimension.
        n_blocks: number of coupling blocks.
        hidden: hidden width of the default subnet.
        n_layers: hidden layers of the default subnet.
        clamp: soft clamp of the log-scales.
        seed: seed of the fixed permutations.
        subnet_constructor: overrides the default MLP subnet.
        family: name stored in exported metadata (``flow`` or ``manifold_flow``).
    """

    def __init__(self, dx: int, dc: int, n_blocks: int = 6, hidden: int = 192,
                 n_layers: int = 2, clamp: float = 2.0, seed: int = 0,
                 subnet_constructor: SubnetConstructor | None = None,
                 family: str = "flow") -> None:
        super().__init__()
        if n_blocks < 1:
            raise ConfigError(f"model.n_blocks must be >= 1, got {n_blocks}")
        self.dx, self.dc, self.dz = int(dx), int(dc), int(dx)
        self.family = family
        sub = subnet_constructor or mlp_subnet(hidden, n_layers)
        self.cond_norm = Normalizer(dc)
        self.x_norm = Normalizer(dx)
        self.blocks = nn.ModuleList(
            [AffineCoupling(dx, dc, sub, clamp) for _ in range(n_blocks)])
        g = torch.Generator().manual_seed(int(seed))
        for k in range(n_blocks):
            perm = torch.randperm(dx, generator=g)
            self.register_buffer(f"perm_{k}", perm)
            self.register_buffer(f"iperm_{k}", torch.argsort(perm))

    # normalized space ------------------------------------------------------
    def forward_normalized(self, xn: torch.Tensor, cn: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized data -> latent; returns ``z (B, dx)`` and ``log|det| (B,)``."""
        logdet = torch.zeros(xn.shape[0], dtype=xn.dtype, device=xn.device)
        h = xn
        for k, block in enumerate(self.blocks):
            h = h[:, getattr(self, f"perm_{k}")]
            h, ld = block(h, cn)
            logdet = logdet + ld
        return h, logdet

    def inverse_normalized(self, z: torch.Tensor, cn: torch.Tensor) -> torch.Tensor:
        """Latent -> normalized data."""
        h = z
        for k in range(len(self.blocks) - 1, -1, -1):
            h = self.blocks[k].inverse(h, cn)
            h = h[:, getattr(self, f"iperm_{k}")]
        return h

    # raw space --------------------------------------------------------------
    def encode(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw data -> latent; ``log|det|`` includes the normalization."""
        z, ld = self.forward_normalized(self.x_norm(x), self.cond_norm(cond))
        return z, ld + self.x_norm.log_abs_det()

    def log_prob(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``log p(x | c)`` of raw data, ``(B,)``."""
        z, ld = self.encode(x, cond)
        return -0.5 * (z ** 2).sum(1) - 0.5 * self.dx * math.log(2 * math.pi) + ld

    def sample(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Raw samples ``(B, dx)`` from raw conditions ``(B, dc)`` and noise ``(B, dz)``."""
        return self.x_norm.inverse(self.inverse_normalized(z, self.cond_norm(cond)))

    def nll_normalized(self, xn: torch.Tensor, cn: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Per-sample NLL in normalized space ``(B,)`` and health statistics."""
        z, ld = self.forward_normalized(xn, cn)
        nll = 0.5 * (z ** 2).sum(1) - ld + 0.5 * self.dx * math.log(2 * math.pi)
        return nll, {"z": z, "logdet": ld}


class ConditionalVAE(nn.Module):
    """Conditional VAE with a Gaussian decoder; :meth:`sample` returns the decoder mean.

    Args:
        dx: output dimension.
        dc: condition dimension.
        dz: latent dimension.
        hidden: hidden width of encoder and decoder.
        n_layers: hidden layers of encoder and decoder.
        family: name stored in exported metadata.
    """

    def __init__(self, dx: int, dc: int, dz: int = 4, hidden: int = 256, n_layers: int = 3,
                 family: str = "cvae") -> None:
        super().__init__()
        if dz < 1:
            raise ConfigError(f"model.dz must be >= 1, got {dz}")
        self.dx, self.dc, self.dz = int(dx), int(dc), int(dz)
        self.family = family
        self.cond_norm = Normalizer(dc)
        self.x_norm = Normalizer(dx)
        self.encoder = mlp(dx + dc, 2 * dz, hidden, n_layers)
        self.decoder = mlp(dz + dc, 2 * dx, hidden, n_layers)

    def encode_normalized(self, xn: torch.Tensor, cn: torch.Tensor):
        """Posterior ``(mu, logvar)``, each ``(B, dz)``."""
        h = self.encoder(torch.cat([xn, cn], dim=1))
        return h[:, :self.dz], h[:, self.dz:].clamp(-12.0, 6.0)

    def decode_normalized(self, z: torch.Tensor, cn: torch.Tensor):
        """Decoder ``(mean, logvar)`` in normalized space, each ``(B, dx)``."""
        h = self.decoder(torch.cat([z, cn], dim=1))
        return h[:, :self.dx], h[:, self.dx:].clamp(-14.0, 4.0)

    def sample(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder means ``(B, dx)`` from raw conditions and prior noise ``(B, dz)``."""
        mean, _ = self.decode_normalized(z, self.cond_norm(cond))
        return self.x_norm.inverse(mean)

    def loss(self, xn: torch.Tensor, cn: torch.Tensor, beta: float = 1.0,
             free_bits: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Training loss and per-sample negative ELBO.

        Args:
            xn: ``(B, dx)`` normalized data.
            cn: ``(B, dc)`` normalized conditions.
            beta: KL weight (annealed by the trainer).
            free_bits: nats per latent dimension below which the batch-mean KL of
                that dimension is not penalized.

        Returns:
            ``(per-sample training loss (B,), per-sample negative ELBO (B,), stats)``.
        """
        mu, logvar = self.encode_normalized(xn, cn)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        mean, dlogvar = self.decode_normalized(z, cn)
        rec = 0.5 * (((xn - mean) ** 2) * torch.exp(-dlogvar) + dlogvar
                     + math.log(2 * math.pi)).sum(1)
        kl = 0.5 * (mu ** 2 + torch.exp(logvar) - 1.0 - logvar)  # (B, dz)
        kl_dim = kl.mean(0)
        if free_bits > 0:
            # Free bits: per-dimension floor on the batch-mean KL, spread over the batch.
            scale = torch.where(kl_dim > free_bits, torch.ones_like(kl_dim),
                                torch.zeros_like(kl_dim))
            kl_pen = (kl * scale).sum(1) + (free_bits * (1 - scale)).sum()
        else:
            kl_pen = kl.sum(1)
        train = rec + beta * kl_pen
        nelbo = rec + kl.sum(1)
        return train, nelbo, {"rec": rec, "kl_dim": kl_dim, "mu": mu, "logvar": logvar,
                              "dec_logvar": dlogvar}


class NearestNeighbour:
    """Nearest-neighbour lookup baseline (seed 000, section 6.3 (1)).

    ``sample(cond, z)`` finds the ``k`` training conditions nearest to ``cond``
    (Euclidean, in normalized condition space) and returns the stance of the one
    picked by ``z[:, 0]`` (``Phi(z)`` mapped to an index), so ``k = 1`` is the
    deterministic lookup of seed 000's table.

    Args:
        cond: ``(N, dc)`` training conditions.
        x: ``(N, dx)`` training outputs.
        k: neighbours to choose from.
    """

    family = "nn"

    def __init__(self, cond: np.ndarray, x: np.ndarray, k: int = 1) -> None:
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.cond = np.asarray(cond, dtype=np.float32)
        self.x = np.asarray(x, dtype=np.float32)
        self.mean = self.cond.mean(0)
        self.std = np.maximum(self.cond.std(0), 1e-3)
        self.k = int(k)
        self.dx, self.dc, self.dz = self.x.shape[1], self.cond.shape[1], 1
        self._cn = torch.as_tensor((self.cond - self.mean) / self.std)

    def sample(self, cond: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Stances ``(B, dx)`` for conditions ``(B, dc)``; ``z (B, >=1)`` picks a neighbour."""
        q = torch.as_tensor((np.asarray(cond, np.float32) - self.mean) / self.std)
        out = np.empty((len(q), self.dx), dtype=np.float32)
        u = 0.5 * (1 + torch.erf(torch.as_tensor(np.asarray(z)[:, 0]) / math.sqrt(2)))
        pick = torch.clamp((u * self.k).long(), 0, self.k - 1).numpy()
        for s in range(0, len(q), 4096):
            d = torch.cdist(q[s:s + 4096], self._cn)
            idx = torch.topk(d, self.k, largest=False).indices.numpy()
            out[s:s + 4096] = self.x[idx[np.arange(len(idx)), pick[s:s + 4096]]]
        return out


def _rodrigues(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations ``(B, 3, 3)`` about a fixed unit axis ``(3,)`` by angles ``(B,)``."""
    c, s = torch.cos(angle), torch.sin(angle)
    C = 1 - c
    x, y, z = axis[0], axis[1], axis[2]
    rows = [
        torch.stack([c + x * x * C, x * y * C - z * s, x * z * C + y * s], -1),
        torch.stack([y * x * C + z * s, c + y * y * C, y * z * C - x * s], -1),
        torch.stack([z * x * C - y * s, z * y * C + x * s, c + z * z * C], -1),
    ]
    return torch.stack(rows, -2)


class TorchFK(nn.Module):
    """Differentiable FK of one frame of a :class:`WholeBodyModel` (planar base + revolute arm).

    Built from the model's public kinematic chain (``robot.chain``: joint
    placements, axes, configuration columns) and ``robot.frame_placement``, so
    it matches the numpy FK.

    Args:
        robot: the whole-body model.
        frame: frame name; default the tool frame.
    """

    def __init__(self, robot, frame: str | None = None) -> None:
        super().__init__()
        frame = frame or robot.config.tool_frame
        jf, T_jf = robot.frame_placement(frame)
        kc = robot.chain
        self.chain = list(kc.path_to_root(jf))
        self.qidx = [3 + kc.arm_rows[j] for j in self.chain]
        self.register_buffer("root", torch.tensor(kc.placements[1], dtype=torch.float32))
        self.register_buffer("placements", torch.tensor(
            np.stack([kc.placements[j] for j in self.chain]), dtype=torch.float32))
        self.register_buffer("axes", torch.tensor(
            np.stack([kc.axes[j] for j in self.chain]), dtype=torch.float32))
        self.register_buffer("T_frame", torch.tensor(T_jf, dtype=torch.float32))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """Frame poses ``(B, 4, 4)`` of configurations ``(B, nq)``."""
        B = q.shape[0]
        c, s = torch.cos(q[:, 2]), torch.sin(q[:, 2])
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        base = torch.stack([
            torch.stack([c, -s, zero, q[:, 0]], -1),
            torch.stack([s, c, zero, q[:, 1]], -1),
            torch.stack([zero, zero, one, zero], -1),
            torch.stack([zero, zero, zero, one], -1)], -2)
        M = self.root @ base
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=q.dtype).expand(B, 1, 4)
        for k, qi in enumerate(self.qidx):
            M = M @ self.placements[k]
            R = M[:, :3, :3] @ _rodrigues(self.axes[k], q[:, qi])
            M = torch.cat([torch.cat([R, M[:, :3, 3:]], 2), bottom], 1)
        return M @ self.T_frame


def build_model(family: str, dx: int, dc: int, params: dict, seed: int = 0) -> nn.Module:
    """Build a model from its family name and the ``model`` section of a config.

    Families: ``flow`` and ``manifold_flow`` (:class:`ConditionalFlow`), ``cvae``
    (:class:`ConditionalVAE`), ``cfm`` and ``manifold_cfm``
    (:class:`~.flow_matching.ConditionalFlowMatching`), ``manifold_gmm``
    (:class:`~.mixture.ConditionalMixture`).

    Raises:
        ConfigError: unknown family or parameter.
    """
    p = dict(params)
    p.pop("family", None)
    try:
        if family in ("flow", "manifold_flow"):
            return ConditionalFlow(dx, dc, seed=seed, family=family, **p)
        if family == "cvae":
            return ConditionalVAE(dx, dc, **p)
        if family in ("cfm", "manifold_cfm"):
            from .flow_matching import ConditionalFlowMatching
            return ConditionalFlowMatching(dx, dc, family=family, **p)
        if family == "manifold_gmm":
            from .mixture import ConditionalMixture
            return ConditionalMixture(dx, dc, family=family, **p)
    except TypeError as e:
        raise ConfigError(f"bad model parameters for family {family!r}: {e}") from e
    raise ConfigError(f"model.family must be one of flow, cvae, manifold_flow, cfm, "
                      f"manifold_cfm, manifold_gmm; got {family!r}")
