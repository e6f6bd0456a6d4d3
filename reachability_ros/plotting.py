"""Top-down pictures of a proposal (matplotlib, Agg backend; imported only when plotting).

One picture serves a success and a failure alike: every sampled base position coloured by
the stage that removed it (or kept), the ranked stances as heading arrows with the robot's
footprint around each, the best stance's camera view, the grasp with its approach axis and
the current base. Everything drawn is in the legend; the view is at least
``MIN_EXTENT_M`` wide, so that a failure with nothing but the grasp is not a thin strip;
the title is wrapped and names files by their base name only.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np

from reachability_ros.atomic import AtomicFile
from reachability_ros.core.outcomes import OUTCOME_COLOURS

MIN_EXTENT_M = 1.2
#: A current base farther than this from the grasp is not zoomed out to: an arrow at the
#: edge of the view points to it.
FAR_BASE_M = 3.0
#: Formats the Agg backend cannot write without extra software.
_UNSUPPORTED = {"pgf": "needs LaTeX"}
BEST, OTHER, GRASP, CURRENT, VIEW = "#d62728", "#8c1c13", "k", "#1f77b4", "#d62728"


def plot_formats() -> set[str]:
    """File extensions (lower case, no dot) a plot can be written as."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    return set(FigureCanvasAgg.get_supported_filetypes()) - set(_UNSUPPORTED)


def _short(text: str) -> str:
    """Replace absolute paths in ``text`` by their file names (titles stay short, private)."""
    return re.sub(r"(?<![\w.])/(?:[^\s()/,]+/)+([^\s()/,]+)", r"\1", text)


def _extent(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square limits around ``points`` (K, 2): padded, at least ``MIN_EXTENT_M`` wide."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = 0.5 * (lo + hi)
    half = max(0.5 * MIN_EXTENT_M, 0.5 * float((hi - lo).max()) + 0.15)
    return ((centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half))


def plot_result(result, robot, path: str, title: str | None = None, *,
                current_base=None, footprint_radius_m: float = 0.0) -> None:
    """Write a top-down picture of a proposal (format from the extension), atomically.

    Args:
        result: a :class:`~reachability_ros.core.types.ProposalResult`.
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel` used.
        path: output file; ``.png``, ``.pdf``, ``.svg``, ... (see :func:`plot_formats`).
        title: replaces the generated title.
        current_base: the :class:`~reachability_ros.core.types.BasePose` the robot is at,
            or None.
        footprint_radius_m: radius of the base's footprint drawn around each stance and
            the current base (0: not drawn); e.g. ``RobotFacts.footprint_radius_m``.

    Raises:
        ValueError: ``path`` has an extension matplotlib cannot write.
        OSError: the file cannot be written (nothing is left behind).
    """
    import matplotlib.pyplot as plt
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in plot_formats():
        raise ValueError(f"cannot write a plot as {path!r}: use one of "
                         f"{', '.join(sorted(plot_formats()))}")
    fig = draw_result(result, robot, title, current_base=current_base,
                      footprint_radius_m=footprint_radius_m)
    try:
        with AtomicFile(path) as target:
            fig.savefig(target.tmp_path, format=ext, bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(fig)


def draw_result(result, robot, title: str | None = None, *, current_base=None,
                footprint_radius_m: float = 0.0):
    """Draw the picture of :func:`plot_result` and return the matplotlib ``Figure``.

    The caller closes it (``matplotlib.pyplot.close(fig)``).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    from reachability_ros.core.geometry import quat_to_matrix
    from reachability_ros.core.report import frustum_segments

    fig, ax = plt.subplots(figsize=(10.0, 7.5), dpi=110)
    handles: list = []
    points = []
    g = np.asarray(result.grasp.position, dtype=float) if result.grasp is not None \
        else np.zeros(3)
    points.append(g[:2])
    if result.samples_q is not None and len(result.samples_q):
        q, out = result.samples_q, result.samples_outcome
        fin = np.all(np.isfinite(q[:, :2]), axis=1)
        for label, colour in OUTCOME_COLOURS.items():
            m = fin & (out == label)
            if m.any():
                ax.scatter(q[m, 0], q[m, 1], s=7, color=colour[:3], alpha=0.6, linewidths=0,
                           zorder=1)
                handles.append(Line2D([], [], ls="", marker="o", ms=4, color=colour[:3],
                                      label=f"sample: {label.replace('_', ' ')} "
                                      f"({int(m.sum())})"))
        if fin.any():
            points.append(q[fin, :2])
    r = float(footprint_radius_m)
    for rank, c in reversed(list(enumerate(result.candidates, start=1))):
        x, y, yaw = (float(v) for v in c.q[:3])
        colour = BEST if rank == 1 else OTHER
        if r > 0:
            ax.add_patch(Circle((x, y), r, fill=False, lw=0.6, color=colour, alpha=0.5,
                                zorder=2))
        ax.annotate("", (x + 0.1 * np.cos(yaw), y + 0.1 * np.sin(yaw)), (x, y),
                    arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.6), zorder=4)
        ax.annotate(str(rank), (x, y), xytext=(-9, -9), textcoords="offset points",
                    fontsize=7, color=colour, zorder=5)
        points.append(np.array([[x - r, y - r], [x + r, y + r]]))
    if result.candidates:
        handles.append(Line2D([], [], color=BEST, lw=1.6, marker=">", ms=6,
                              label="best stance (#1): base position, heading"))
        if len(result.candidates) > 1:
            handles.append(Line2D([], [], color=OTHER, lw=1.6, marker=">", ms=6,
                                  label=f"ranked stances #2-#{len(result.candidates)}"))
        segs = frustum_segments(robot, result.candidates[0].q, depth_m=0.6)
        points.append(segs[:4, :, :2].reshape(-1, 2))
        for a, b in segs[:4]:
            ax.plot([a[0], b[0]], [a[1], b[1]], color=VIEW, lw=0.8, ls="--", alpha=0.7,
                    zorder=3)
        handles.append(Line2D([], [], color=VIEW, lw=0.8, ls="--",
                              label="front camera view of #1 (edges, 0.6 m deep)"))
    if r > 0 and (result.candidates or current_base is not None):
        handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", color="0.4",
                              label=f"robot footprint (r = {r:.3f} m) at each base"))
    far_base = None
    if current_base is not None:
        x, y, yaw = current_base.x, current_base.y, current_base.yaw
        if r > 0:
            ax.add_patch(Circle((x, y), r, fill=False, lw=0.8, ls=":", color=CURRENT,
                                zorder=2))
        ax.annotate("", (x + 0.1 * np.cos(yaw), y + 0.1 * np.sin(yaw)), (x, y),
                    arrowprops=dict(arrowstyle="-|>", color=CURRENT, lw=1.6), zorder=4)
        ax.plot([x], [y], marker="s", ms=5, color=CURRENT, zorder=4)
        handles.append(Line2D([], [], color=CURRENT, lw=1.6, marker="s", ms=5,
                              label="current base, heading"))
        if np.hypot(x - g[0], y - g[1]) <= FAR_BASE_M:
            points.append(np.array([[x - r, y - r], [x + r, y + r]]))
        else:  # keep the view on the grasp; point towards the base from its edge
            far_base = (x, y)
    if result.grasp is not None:
        a = quat_to_matrix(np.asarray(result.grasp.orientation, dtype=float))[:, 2]
        ax.plot(g[0], g[1], marker="*", ms=15, color=GRASP, zorder=6, ls="")
        if np.hypot(a[0], a[1]) > 1e-3:
            ax.annotate("", (g[0] + 0.08 * a[0], g[1] + 0.08 * a[1]), (g[0], g[1]),
                        arrowprops=dict(arrowstyle="-|>", color=GRASP, lw=1.2), zorder=6)
        handles.append(Line2D([], [], color=GRASP, marker="*", ms=10, lw=1.2,
                              label=f"grasp at z = {g[2]:.2f} m, approach axis"))
    (x0, x1), (y0, y1) = _extent(np.vstack(points))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    if far_base is not None:
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        d = np.array(far_base) - (cx, cy)
        tip = np.array((cx, cy)) + d / np.abs(d).max() * 0.47 * (x1 - x0)
        away = float(np.hypot(far_base[0] - g[0], far_base[1] - g[1]))
        ax.annotate(f"current base {away:.1f} m from the grasp", tip,
                    xytext=tip - 0.12 * (x1 - x0) * d / np.hypot(*d), color=CURRENT,
                    fontsize=7, ha="left" if d[0] < 0 else "right", va="center",
                    arrowprops=dict(arrowstyle="-|>", color=CURRENT, lw=1.0), zorder=7)
    ax.ticklabel_format(useOffset=False, style="plain")
    frame = result.grasp.frame_id if result.grasp is not None and result.grasp.frame_id \
        else "world"
    ax.set_xlabel(f"x in {frame} (m)")
    ax.set_ylabel(f"y in {frame} (m)")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
              framealpha=0.9, borderaxespad=0.0)
    if title is None:
        status = (f"{len(result.candidates)} ranked stances" if result.ok
                  else f"NO STANCE: {result.reason}")
        title = (f"Stances for the grasp at ({g[0]:.2f}, {g[1]:.2f}, {g[2]:.2f}) m, "
                 f"sampler {result.sampler}. {status}")
    ax.set_title("\n".join(textwrap.wrap(_short(title), 110)), fontsize=8, loc="left")
    fig.tight_layout()
    return fig
