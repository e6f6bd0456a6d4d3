"""Proposal samplers: where might the robot stand for this grasp?

Every sampler maps a grasp ``T_world_grasp`` (4, 4), a count and a random
generator to whole-body configurations ``(n, nq)`` in the grasp's world frame,
plus whether they are *exact* (the tool already meets the grasp, up to floating
point) or *approximate* (they need refinement):

* :class:`ModelSampler`: an exported ONNX model (onnxruntime), noise ``z`` drawn
  from the request's generator so results are seedable. Output either stance
  features (8-D, approximate: refined afterwards) or manifold coordinates
  (decoded exactly by the closed-form solver).
* :class:`GridSampler`: a dense grid over the exact stance manifold (pan,
  shoulder-lift, all branches); no learning; the fallback without a model.
* :class:`RejectionSampler`: the model-free baseline: base poses in an annulus
  around the grasp facing it with noise, arm seeds, then whole-body refinement.

Each sampler also draws for many target poses at once (``sample_targets``: the
flips, free rolls and alternatives of one request, ``core/freedom.py``): one call,
one model run, one closed-form solve over every row, each row solved for its own
target. A target drawn with noise draws ``0 .. n - 1`` gets exactly the proposals
that ``sample`` returns for it alone with the same generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .canonical import StanceCodec, condition_features
from .errors import ConfigError
from .freedom import GRID_ROLLS, Targets
from .geometry import wrap_angle
from .paths import resolve_data_path
from .robot import WholeBodyModel


@dataclass
class Proposals:
    """Raw proposals of a sampler.

    Attributes:
        q: ``(n, nq)`` configurations (rows may be NaN when ``valid`` is False).
        valid: ``(n,)`` False where the sampler itself knows the row is infeasible
            (an imaginary branch of the closed form, ...).
        exact: the valid rows already put the tool on the grasp.
        refine_from_afar: approximate rows are seeds for the refinement however
            far their tool is from the grasp (the rejection baseline): the
            pipeline's coarse distance filter does not apply to them.
        target: ``(n,)`` the target of each row (``sample_targets``), or None (one
            grasp).
    """

    q: np.ndarray
    valid: np.ndarray
    exact: bool
    refine_from_afar: bool = False
    target: np.ndarray | None = None


class Sampler(Protocol):
    """What the pipeline needs from a sampler."""

    name: str
    #: None: the sampler draws one free roll per proposal with its noise; an int: an
    #: even grid of that many rolls per free-roll grasp (a sampler without noise)
    roll_grid: int | None

    def sample(self, T_world_grasp: np.ndarray, n: int, rng: np.random.Generator) -> Proposals:
        """Return ``n`` proposals for one grasp."""

    def sample_targets(self, targets: Targets, rng: np.random.Generator) -> Proposals:
        """Return proposals for many targets in one batch, ``Proposals.target`` set."""


class RejectionSampler:
    """Model-free baseline: annulus around the grasp, facing it with noise.

    The annulus bounds come from the robot's reach, measured once at start-up:
    the 1st and 99th percentile of the horizontal distance between the base
    centre and the tool over random in-limit arm configurations whose tool the
    front camera sees.

    Args:
        robot: the whole-body model.
        rng: generator for the one-off reach measurement.
        heading_sigma_deg: std of the heading noise around "facing the grasp".
    """

    name = "rejection"
    roll_grid = None  # free rolls are drawn with the noise

    def __init__(self, robot: WholeBodyModel, rng: np.random.Generator | None = None,
                 heading_sigma_deg: float = 25.0) -> None:
        from .visibility import Visibility
        self.robot = robot
        rng = rng or np.random.default_rng(0)
        q = robot.random_configurations(20000, rng, base_extent_m=0.0)
        q[:, :3] = 0.0
        vis = Visibility(robot).check(q).visible
        p = robot.fk(q[vis], [robot.config.tool_frame])[robot.config.tool_frame][:, :3, 3]
        r = np.hypot(p[:, 0], p[:, 1])
        self.r_min, self.r_max = (float(v) for v in np.percentile(r, [1, 99]))
        self.arm_seeds = q[vis][:, 3:]
        self.heading_sigma = np.radians(heading_sigma_deg)

    def sample(self, T_world_grasp: np.ndarray, n: int, rng: np.random.Generator) -> Proposals:
        """Draw base poses in the annulus and arm seeds; the pipeline refines them."""
        return self._around(T_world_grasp[:3, 3], n, rng)

    def sample_targets(self, targets: Targets, rng: np.random.Generator) -> Proposals:
        """Draw one annulus pose and seed per noise draw, around each row's target."""
        props = self._around(targets.T[targets.rows, :3, 3], targets.n_noise, rng,
                             targets.noise)
        props.target = targets.rows
        return props

    def _around(self, g: np.ndarray, n: int, rng: np.random.Generator,
                draw: np.ndarray | None = None) -> Proposals:
        """Proposals around grasp positions ``g`` (3,) or (rows, 3) from ``n`` draws.

        ``draw`` ``(rows,)`` picks each row's draw (default: row i takes draw i).
        """
        r = np.sqrt(rng.uniform(self.r_min ** 2, self.r_max ** 2, n))
        phi = rng.uniform(-np.pi, np.pi, n)
        heading = self.heading_sigma * rng.standard_normal(n)
        seeds = self.arm_seeds[rng.integers(0, len(self.arm_seeds), n)]
        if draw is not None:
            r, phi, heading, seeds = r[draw], phi[draw], heading[draw], seeds[draw]
        g = np.asarray(g, dtype=float)
        gx, gy = (g[0], g[1]) if g.ndim == 1 else (g[:, 0], g[:, 1])
        m = r.shape[0]
        q = np.empty((m, self.robot.nq))
        q[:, 0] = gx + r * np.cos(phi)
        q[:, 1] = gy + r * np.sin(phi)
        q[:, 2] = wrap_angle(phi + np.pi + heading)
        q[:, 3:] = seeds
        return Proposals(q, np.ones(m, dtype=bool), exact=False, refine_from_afar=True)


class GridSampler:
    """Exact stances on a dense (pan, shoulder-lift) grid over every branch.

    Args:
        manifold: a :class:`~reachability_ros.core.manifold.StanceManifold`.
    """

    name = "grid"
    #: a free-roll grasp gets an even grid of this many rolls (no noise to draw them)
    roll_grid = GRID_ROLLS

    def __init__(self, manifold) -> None:
        self.manifold = manifold

    def side(self, n: int) -> int:
        """Pan and lift cells of a grid of about ``n`` stances (square per branch)."""
        return max(2, int(round(np.sqrt(n / self.manifold.n_branches))))

    def _sides(self, counts: np.ndarray, rolls: np.ndarray) -> np.ndarray:
        """Pan and lift cells ``(P,)`` of each target's grid, from its rows and free rolls.

        The grid sampler: :meth:`side` of the rows (a vertical approach's rolls on top).
        """
        return np.array([self.side(c) for c in counts], dtype=int)

    def sample(self, T_world_grasp: np.ndarray, n: int, rng: np.random.Generator) -> Proposals:
        """Return about ``n`` grid stances (the grid is square per branch); ``rng`` unused."""
        side = self.side(n)
        q, valid, _ = self.manifold.grid(T_world_grasp, n_pan=side, n_lift=side)
        return Proposals(q, valid, exact=True)

    def sample_targets(self, targets: Targets, rng: np.random.Generator,
                       n_roll: int = 8) -> Proposals:
        """Lay the grid of each target (sized by its rows) out in one batch; solve once.

        The layout of each target is that of :meth:`StanceManifold.grid`
        (``(roll, branch, pan, lift)`` cell centres, ``n_roll`` free wrist rolls for a
        vertical approach), so a target's rows equal ``sample`` for it alone.
        ``rng`` is unused.
        """
        m = self.manifold
        lo, hi = m.robot.lower[3:5], m.robot.upper[3:5]
        P = targets.T.shape[0]
        vertical = m.is_vertical(targets.T)
        nr = np.where(vertical, max(1, int(n_roll)), 1)
        side = self._sides(np.bincount(targets.rows, minlength=P), nr)
        nb = m.n_branches
        count = nr * nb * side * side
        target = np.repeat(np.arange(P), count)
        local = np.arange(target.size) - np.repeat(np.cumsum(count) - count, count)
        s = side[target]
        i_lift, rest = local % s, local // s
        i_pan, rest = rest % s, rest // s
        branch, i_roll = rest % nb, rest // nb
        pan = lo[0] + (i_pan + 0.5) * ((hi[0] - lo[0]) / s)
        lift = lo[1] + (i_lift + 0.5) * ((hi[1] - lo[1]) / s)
        roll = m.roll_zero + (i_roll + 0.5) * (np.pi / nr[target])
        q, valid = m.solve(targets.T, pan, lift, branch, roll=roll, grasp_of_row=target)
        return Proposals(q, valid, exact=True, target=target)


class ModelSampler:
    """Proposals from an exported ONNX model (see ``core/onnx_sampler.py``).

    Args:
        model: an ``OnnxStanceModel``.
        robot: the whole-body model the model was trained for.
        manifold: the closed-form solver; needed for ``manifold_coords`` models.
    """

    def __init__(self, model, robot: WholeBodyModel, manifold=None) -> None:
        self.model = model
        self.robot = robot
        self.manifold = manifold
        self.codec = StanceCodec(robot.config.reach_m, robot.lower[3:], robot.upper[3:])
        self.name = f"model:{model.family}"
        self.roll_grid = None  # free rolls are drawn with the noise
        if model.output == "manifold_coords" and manifold is None:
            raise ValueError("a manifold_coords model needs the closed-form manifold solver")

    def sample(self, T_world_grasp: np.ndarray, n: int, rng: np.random.Generator) -> Proposals:
        """Run the model on ``n`` noise vectors drawn from ``rng``."""
        cond = np.repeat(condition_features(T_world_grasp[None], self.robot.config.reach_m), n,
                         axis=0)
        z = rng.standard_normal((n, self.model.dz)).astype(np.float32)
        return self._decode(self.model.run(cond.astype(np.float32), z), T_world_grasp, n, rng)

    def sample_targets(self, targets: Targets, rng: np.random.Generator) -> Proposals:
        """Run the model once over every row, conditioned on the row's own target."""
        rows = targets.rows
        cond = condition_features(targets.T, self.robot.config.reach_m)[rows]
        z = rng.standard_normal((targets.n_noise, self.model.dz)).astype(np.float32)
        props = self._decode(self.model.run(cond.astype(np.float32), z[targets.noise]),
                             targets.T, rows.size, rng, rows)
        props.target = rows
        return props

    def _decode(self, y: np.ndarray, T: np.ndarray, n: int, rng: np.random.Generator,
                rows: np.ndarray | None = None) -> Proposals:
        """Model outputs ``(n, d)`` -> proposals for grasps ``T`` (4, 4) or (P, 4, 4).

        ``rows``: ``(n,)`` the grasp of each row among ``P`` grasps, or None: ``T``
        (4, 4) serves every row.

        The model proposes (pan, lift, branch); at a vertical approach the wrist roll
        is a third free coordinate (the stance set is 3-D, ``core/manifold.py``) that
        the model does not output: those rows get a roll drawn uniformly (with the
        roll branch, over the whole circle) instead of one fixed roll, which would
        leave only two base headings around the grasp. The solver draws the rolls
        from ``rng`` only when a row is vertical, so other requests draw what they did.
        """
        if self.model.output == "manifold_coords":
            from .onnx_sampler import decode_manifold_output
            pan, lift, branch = decode_manifold_output(y, self.robot.lower[3:5],
                                                       self.robot.upper[3:5])
            q, valid = self.manifold.solve(T, pan, lift, branch, roll_rng=rng,
                                           grasp_of_row=rows)
            return Proposals(q, valid, exact=True)
        q = self.codec.decode(y, T[rows] if rows is not None else np.repeat(T[None], n, axis=0))
        return Proposals(q, np.all(np.isfinite(q), axis=1), exact=False)


class DenseGridSampler(GridSampler):
    """The exact grid with about ``n`` stances in all, a vertical approach's rolls included.

    (:class:`GridSampler` gives a vertical approach 8 rolls on top of ``n``.) The world's
    fallback searches with it when the scene leaves too few stances; for many targets
    (:meth:`~GridSampler.sample_targets`) each target gets the grid :meth:`sample` gives it
    alone.
    """

    def sample(self, T_world_grasp: np.ndarray, n: int, rng: np.random.Generator) -> Proposals:
        """Return about ``n`` exact grid stances; ``rng`` unused."""
        rolls = 8 if self.manifold.is_vertical(T_world_grasp[None])[0] else 1
        side = int(self._sides(np.array([n]), np.array([rolls]))[0])
        q, valid, _ = self.manifold.grid(T_world_grasp, n_pan=side, n_lift=side, n_roll=rolls)
        return Proposals(q, valid, exact=True)

    def _sides(self, counts: np.ndarray, rolls: np.ndarray) -> np.ndarray:
        """Pan and lift cells ``(P,)`` of each target's grid: about its rows, rolls included.

        :meth:`GridSampler.sample_targets` then lays each target out as :meth:`sample`
        does for it alone (a vertical approach's 8 rolls within the count, not on top).
        """
        nb = self.manifold.n_branches
        return np.array([max(2, int(round(np.sqrt(c / (nb * r))))) for c, r in
                         zip(counts.tolist(), rolls.tolist())], dtype=int)


def make_sampler(pc, robot: WholeBodyModel, manifold=None) -> tuple:
    """Build the configured sampler; return it and its name for reports.

    Args:
        pc: the :class:`~.config.ProposalConfig` (``sampler``, ``model_path``).
        robot: the whole-body model.
        manifold: the closed-form solver, or None when the description has none.

    Returns:
        ``(sampler, name)``; ``auto`` is the ONNX model when a model path is set, else
        the exact grid (or, without the closed form, the rejection baseline), and the
        name then says it is a fallback.

    Raises:
        ConfigError: an unknown sampler, ``model`` without a model path, the grid
            without the closed form.
        ModelMismatch: the model was exported for another robot or description.
    """
    kind = pc.sampler
    if kind not in ("auto", "model", "grid", "rejection"):
        raise ConfigError(f"proposal.sampler {kind!r}: use auto, model, grid or rejection")
    fallback = kind == "auto" and not pc.model_path
    if kind == "auto":
        kind = "model" if pc.model_path else ("grid" if manifold is not None else "rejection")
    if kind == "model":
        if not pc.model_path:
            raise ConfigError("proposal.sampler is 'model' but proposal.model_path is empty")
        from .onnx_sampler import OnnxStanceModel
        model = OnnxStanceModel(resolve_data_path(pc.model_path), robot)
        s = ModelSampler(model, robot, manifold)
        return s, f"{s.name} ({pc.model_path})"
    if kind == "grid":
        if manifold is None:
            raise ConfigError("the grid sampler needs the closed-form manifold of the LeKiwi")
        s = GridSampler(manifold)
    else:
        s = RejectionSampler(robot)
    return s, s.name + (" (fallback: no model configured)" if fallback else "")
