"""Data, samplers and the nearest-neighbour baseline of the toy robots (seed 000 sections 5-6).

* :func:`sample_targets`: targets ``H`` uniform in a workspace.
* :func:`toy_v1_samples`, :func:`toy_v2_samples`, :func:`toy_v2_dataset`: training pairs
  of the stick toy and of the two-link toy (the pipeline of seed 000 section 5.1).
* :func:`exact_sampler`, :func:`feature_sampler`, :class:`NearestNeighbourLookup`:
  samplers ``h (B, 2) -> q (B, dq)`` to evaluate with :mod:`.toy_metrics`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..core.errors import ConfigError, InvalidRequest
from .toys import StickToy, Toy, TwoLinkToy, as_batch, positive_number

#: a sampler under test: targets ``h (B, 2)`` -> configurations ``q (B, dq)``, one per row
Sampler = Callable[[np.ndarray], np.ndarray]

DEFAULT_WORKSPACE_M = ((-2.0, 2.0), (-2.0, 2.0))


def _check_workspace(workspace_m) -> np.ndarray:
    w = np.asarray(workspace_m, dtype=float)
    if w.shape != (2, 2) or not np.all(np.isfinite(w)) or np.any(w[:, 1] <= w[:, 0]):
        raise ConfigError(
            f"workspace_m must be ((x_min, x_max), (y_min, y_max)) with min < max, "
            f"got {workspace_m!r}")
    return w


def sample_targets(n: int, rng: np.random.Generator,
                   workspace_m=DEFAULT_WORKSPACE_M) -> np.ndarray:
    """Draw targets ``H ~ Uniform(workspace)`` (seed 000 section 5.1, step 1): ``(n, 2)``.

    Args:
        n: number of targets.
        rng: random generator.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` (m).

    Raises:
        ConfigError: an empty or malformed workspace.
    """
    w = _check_workspace(workspace_m)
    return rng.uniform(w[:, 0], w[:, 1], size=(int(n), 2))


# --------------------------------------------------------- data generation
def toy_v1_samples(n: int, rng: np.random.Generator, toy: StickToy | None = None,
                   workspace_m=DEFAULT_WORKSPACE_M) -> tuple[np.ndarray, np.ndarray]:
    """Data set of toy v1: ``H ~ U(workspace)``, ``t ~ U[-pi, pi)``, ``Q`` on the circle.

    Args:
        n: number of pairs.
        rng: random generator (the result is a function of its state).
        toy: the stick toy, default ``StickToy()``.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` of the targets (m).

    Returns:
        ``q_world`` ``(n, 3)`` and ``h_world`` ``(n, 2)``, ``fk(q) == h``.
    """
    toy = toy or StickToy()
    h = sample_targets(n, rng, workspace_m)
    return toy.sample_solutions(h, rng), h


def toy_v2_samples(n: int, rng: np.random.Generator, toy: TwoLinkToy | None = None,
                   workspace_m=DEFAULT_WORKSPACE_M) -> tuple[np.ndarray, np.ndarray]:
    """Data set of toy v2 by the pipeline of seed 000 section 5.1.

    Per target: (1) ``H ~ U(workspace)``; (2)-(3) one base from the donut facing
    ``H`` with heading noise; (4) both elbow branches by analytic IK; (5) keep
    the branches within the joint limits. Rows are then shuffled (the two
    branches of one base would otherwise sit side by side) and the first ``n``
    kept.

    Args:
        n: number of pairs.
        rng: random generator (the result is a function of its state).
        toy: the two-link toy, default ``TwoLinkToy()``.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` of the targets (m).

    Returns:
        ``q_world`` ``(n, 5)`` and ``h_world`` ``(n, 2)``, ``fk(q) == h``.

    Raises:
        ConfigError: the joint limits reject everything.
    """
    toy = toy or TwoLinkToy()
    n = int(n)
    qs, hs, have = [], [], 0
    for _ in range(1000):
        m = max(64, (n - have) // 2 + 16)
        h = sample_targets(m, rng, workspace_m)
        q, valid = toy.ik(toy.sample_bases(h, rng), h)
        qs.append(q[valid])
        hs.append(np.repeat(h[:, None], 2, axis=1)[valid])
        have += int(valid.sum())
        if have >= n:
            break
    else:
        raise ConfigError(f"TwoLinkToy limits {toy.theta1_limits}, {toy.theta2_limits} reject "
                          "(nearly) every solution; widen them")
    q, h = np.concatenate(qs)[:n], np.concatenate(hs)[:n]
    perm = rng.permutation(n)
    return q[perm], h[perm]


def toy_v2_dataset(n: int, rng: np.random.Generator, toy: TwoLinkToy | None = None,
                   workspace_m=DEFAULT_WORKSPACE_M,
                   cond_dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs ``(C_feat, Q_feat)`` of toy v2.1 (seed 000 section 4.1).

    ``Q_feat`` is :meth:`TwoLinkToy.featurize` of :func:`toy_v2_samples` relative
    to each row's own target, so the data no longer depend on ``H``: the
    condition is the zero vector ``C_feat = (0, ..., 0)`` (seed 000 Table 1:
    ``c_feat = [0, 0]``; ``cond_dim = 0`` gives the empty ``(n, 0)`` of
    "dCond = 0"). A sampler of ``p(Q_feat | C_feat)`` is decoded for a target
    ``H`` with :meth:`TwoLinkToy.decode`.

    Args:
        n: number of pairs.
        rng: random generator (the result is a function of its state).
        toy: the two-link toy, default ``TwoLinkToy()``.
        workspace_m: ``((x_min, x_max), (y_min, y_max))`` of the targets (m);
            it does not change the distribution of the features.
        cond_dim: width of the (zero) condition.

    Returns:
        ``cond`` ``(n, cond_dim)`` zeros and ``x`` ``(n, 8)`` features.
    """
    if isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 0:
        raise ConfigError(f"cond_dim must be an integer >= 0, got {cond_dim!r}")
    toy = toy or TwoLinkToy()
    q, h = toy_v2_samples(n, rng, toy, workspace_m)
    return np.zeros((len(q), cond_dim)), toy.featurize(q, h)


# ----------------------------------------------------------------- samplers
def exact_sampler(toy: Toy, rng: np.random.Generator) -> Sampler:
    """The ground-truth sampler: ``h (B, 2) -> q (B, dq)``, one exact draw per row."""
    return lambda h: toy.sample_solutions(h, rng)


def feature_sampler(toy: Toy, sample_features: Callable[[int], np.ndarray]) -> Sampler:
    """Turn an unconditional sampler of ``Q_feat`` into ``h (B, 2) -> q (B, dq)``.

    Args:
        toy: the toy whose :meth:`decode` maps features back for each target.
        sample_features: ``n -> (n, d_feat)`` draws (e.g. a trained v2.1 model).
    """
    return lambda h: toy.decode(sample_features(len(h)), h)


class NearestNeighbourLookup:
    """Nearest-neighbour baseline of seed 000 section 6.3 (numpy, brute force).

    For a query ``H'`` find the ``k`` nearest training targets ``H_i``; with
    ``k = 1`` return the ``Q_i`` of the nearest (deterministic, the seed's
    "NNDeterministicLookup"); with ``k > 1`` draw one of them with weights
    ``w_j ~ exp(-|H_j - H'|^2 / sigma^2)``.

    Args:
        h_train: ``(N, 2)`` training targets.
        q_train: ``(N, dq)`` their configurations.
        k: neighbours considered.
        sigma_m: kernel width (m) for ``k > 1``.
        rng: random generator for ``k > 1``.
        chunk: queries per distance block (memory ``chunk * N`` floats).

    Raises:
        ConfigError: bad ``k`` / ``sigma_m``, or ``k > 1`` without ``rng``.
    """

    def __init__(self, h_train: np.ndarray, q_train: np.ndarray, k: int = 1,
                 sigma_m: float = 0.05, rng: np.random.Generator | None = None,
                 chunk: int = 256) -> None:
        self.h_train = as_batch(h_train, 2, "training targets")
        self.q_train = np.asarray(q_train, dtype=float)
        if self.q_train.ndim != 2 or len(self.q_train) != len(self.h_train):
            raise InvalidRequest(f"q_train must be (N, dq) with N = {len(self.h_train)}, "
                                 f"got {self.q_train.shape}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.h_train):
            raise ConfigError(f"k must be an integer in [1, {len(self.h_train)}], got {k!r}")
        if k > 1 and rng is None:
            raise ConfigError("k > 1 draws among the neighbours: pass rng")
        self.k, self.rng, self.chunk = k, rng, chunk
        self.sigma_m = positive_number("sigma_m", sigma_m)

    def neighbours(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(B, k)`` of the nearest training targets and distances ``(B, k)``."""
        h = as_batch(h, 2, "query targets")
        idx = np.empty((len(h), self.k), dtype=int)
        dist = np.empty((len(h), self.k))
        for a in range(0, len(h), self.chunk):
            d2 = np.sum((h[a:a + self.chunk, None, :] - self.h_train[None]) ** 2, axis=-1)
            if self.k == 1:
                j = np.argmin(d2, axis=1)[:, None]
            else:
                j = np.argpartition(d2, self.k - 1, axis=1)[:, :self.k]
            idx[a:a + self.chunk] = j
            dist[a:a + self.chunk] = np.sqrt(np.take_along_axis(d2, j, axis=1))
        return idx, dist

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """Configurations ``(B, dq)`` for query targets ``h`` ``(B, 2)``."""
        h = as_batch(h, 2, "query targets")
        uniq, inv = np.unique(h, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        idx, dist = self.neighbours(uniq)
        if self.k == 1:
            return self.q_train[idx[inv, 0]]
        w = np.exp(-(dist[inv] / self.sigma_m) ** 2 + (dist[inv, :1] / self.sigma_m) ** 2)
        cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        pick = np.minimum((cdf < self.rng.random((len(h), 1))).sum(axis=1), self.k - 1)
        return self.q_train[idx[inv, pick]]
