"""The typed records that the stages of the pipeline (``core/pipeline.py``) pass on.

:class:`Sampled` (the proposals and what has happened to each), :class:`Verified` (the
rows that reach the grasp, with their chain and visibility), :class:`Ranked` (the
feasible stances, scored, and the chosen ones), and the merging of two rounds of
proposals (the world's fallback appends a second round to the first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .freedom import Targets
from .outcomes import CODE
from .samplers import Proposals
from .visibility import VisibilityResult


@dataclass
class Sampled:
    """The proposals of one request and what has happened to each so far.

    Attributes:
        proposals: what the sampler returned (``q`` untouched).
        q: ``(n, nq)`` working copy; refinement writes into it.
        outcome: ``(n,)`` int8 code of each row's label (``outcomes.CODE``;
            0 = ``kept`` so far).
        alive: ``(n,)`` rows still in the running.
        T: the grasp of the rows: ``(4, 4)`` one for all, or ``(n, 4, 4)`` each
            row's own target (a grasp turned about its approach axis, an
            alternative).
        grasp_index: ``(n,)`` the grasp of the request each row serves (0 = main).
        target: ``(n,)`` each row's target among ``targets``, or None.
        targets: the request's targets (``core/freedom.py``), or None (one grasp).
    """

    proposals: Proposals
    q: np.ndarray
    outcome: np.ndarray
    alive: np.ndarray
    T: np.ndarray | None = None
    grasp_index: np.ndarray | None = None
    target: np.ndarray | None = None
    targets: Targets | None = None

    @property
    def group(self) -> np.ndarray | None:
        """``(n,)`` ranking group of each row (``Targets.group``), or None (one group)."""
        if self.targets is None or self.targets.n_groups == 1:
            return None
        return self.targets.group[self.target]

    @property
    def free_roll(self) -> np.ndarray | None:
        """``(n,)`` the row's grasp takes any roll about its approach, or None (none does)."""
        if self.targets is None or not self.targets.free.any():
            return None
        return self.targets.free[self.target]

    @property
    def n(self) -> int:
        """Number of proposals."""
        return self.q.shape[0]

    def remove(self, rows: np.ndarray, label: str) -> None:
        """Label rows (indices) as removed by a stage."""
        self.outcome[rows] = CODE[label]
        self.alive[rows] = False


@dataclass
class Verified:
    """The proposals that passed limits and the FK check, with what ranking reuses.

    Attributes:
        idx: ``(m,)`` their rows among the proposals.
        q: ``(m, nq)`` their (refined) configurations.
        chain: ``(njoints, 3, 4, m)`` joint poses in each base frame.
        position_error_m: ``(m,)`` tool position error against the grasp.
        orientation_error_rad: ``(m,)`` tool orientation error.
        visibility: the visibility of the tool from the front camera.
        good: ``(m,)`` also visible with the required margin (and clear of the world,
            after :meth:`StanceProposer.scene_filter`): feasible.
        clearance_m: ``(m,)`` the stances' clearance to the world (NaN where not
            measured), or None without a world.
    """

    idx: np.ndarray
    q: np.ndarray
    chain: np.ndarray
    position_error_m: np.ndarray
    orientation_error_rad: np.ndarray
    visibility: VisibilityResult
    good: np.ndarray
    clearance_m: np.ndarray | None = None


@dataclass
class Ranked:
    """The feasible stances, scored, and the diverse top-k chosen among them.

    Attributes:
        idx: ``(f,)`` rows of the feasible stances among the proposals.
        q: ``(f, nq)`` the feasible stances.
        chain: ``(njoints, 3, 4, f)`` their joint poses in the base frames.
        metrics: raw per-stance figures ``(f,)`` (and ``q``).
        terms: weighted score terms ``(f,)``.
        base_score: ``(f,)`` the score without the robustness term.
        score: ``(f,)`` the score.
        chosen: indices into the feasible stances, best first.
        perturbations: ``(S, 3)`` base errors of the robustness estimates.
        k: stances to return.
        pooled: ``chosen`` is the pool of several ranking groups (each group's
            diverse top-k); :meth:`StanceProposer.robustness` picks the final top-k.
    """

    idx: np.ndarray
    q: np.ndarray
    chain: np.ndarray
    metrics: dict
    terms: dict
    base_score: np.ndarray
    score: np.ndarray
    chosen: np.ndarray
    perturbations: np.ndarray
    k: int = 0
    pooled: bool = False


def target_rows(T: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The grasp of rows ``idx``: ``T`` when one (4, 4) serves all, else ``T[idx]``."""
    return T if T.ndim == 2 else T[idx]


def merge_sampled(a: Sampled, b: Sampled) -> Sampled:
    """Return the proposals of two rounds for the same request, the second appended."""
    props = Proposals(np.vstack([a.proposals.q, b.proposals.q]),
                      np.concatenate([a.proposals.valid, b.proposals.valid]),
                      a.proposals.exact and b.proposals.exact,
                      a.proposals.refine_from_afar and b.proposals.refine_from_afar)
    merged = Sampled(props, np.vstack([a.q, b.q]), np.concatenate([a.outcome, b.outcome]),
                     np.concatenate([a.alive, b.alive]))
    if a.targets is None:  # one fixed grasp: the same (4, 4) pose for every row
        merged.T, merged.grasp_index = a.T, np.concatenate([a.grasp_index, b.grasp_index])
        return merged
    merged.targets = a.targets.concat(b.targets)
    merged.target = np.concatenate([a.target, b.target + a.targets.T.shape[0]])
    merged.T = merged.targets.T[merged.target]
    merged.grasp_index = merged.targets.grasp_index[merged.target]
    return merged


def merge_verified(a: Verified, b: Verified, offset: int) -> Verified:
    """Return the verified rows of two rounds; ``b``'s proposal rows start at ``offset``."""
    vis = VisibilityResult(*(np.concatenate([getattr(a.visibility, f), getattr(b.visibility, f)])
                             for f in VisibilityResult.__dataclass_fields__))
    return Verified(np.concatenate([a.idx, b.idx + offset]), np.vstack([a.q, b.q]),
                    np.concatenate([a.chain, b.chain], axis=-1),
                    np.concatenate([a.position_error_m, b.position_error_m]),
                    np.concatenate([a.orientation_error_rad, b.orientation_error_rad]), vis,
                    np.concatenate([a.good, b.good]),
                    np.concatenate([a.clearance_m, b.clearance_m]))
