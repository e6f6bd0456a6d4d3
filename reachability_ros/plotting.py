"""Top-down pictures of a proposal (matplotlib, Agg backend; imported only when plotting).

One picture serves a success and a failure alike: every sampled base position coloured by
the stage that removed it (or kept), the ranked stances as heading arrows with the robot's
footprint around each, the best stance's camera view, the grasp with its approach axis and
the current base. With a world: the map's blocked and unknown cells under everything, the
boxes' floor plans (shaded by height, labelled with it), and each stance's footprint
coloured by its clearance. Everything drawn is in the legend; the view is at least
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
#: Footprints are coloured by clearance from 0 (dark) to this (bright), m.
CLEARANCE_SCALE_M = 0.2


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
                current_base=None, footprint_radius_m: float = 0.0, world=None,
                footprint_polygon=None) -> None:
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
        world: the :class:`~reachability_ros.core.world.World` the stances were checked
            against, or None.
        footprint_polygon: ``(E, 2)`` the footprint polygon in the base frame, drawn
            instead of the circle when given (Nav2's ``footprint``).

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
                      footprint_radius_m=footprint_radius_m, world=world,
                      footprint_polygon=footprint_polygon)
    try:
        with AtomicFile(path) as target:
            fig.savefig(target.tmp_path, format=ext, bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(fig)


def draw_result(result, robot, title: str | None = None, *, current_base=None,
                footprint_radius_m: float = 0.0, world=None, footprint_polygon=None):
    """Draw the picture of :func:`plot_result` and return the matplotlib ``Figure``.

    The caller closes it (``matplotlib.pyplot.close(fig)``).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Polygon

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
    polygon = None if footprint_polygon is None or not len(footprint_polygon) else \
        np.asarray(footprint_polygon, dtype=float).reshape(-1, 2)
    if world is not None:
        handles += draw_world(ax, world)
    cmap = matplotlib.colormaps["viridis"]
    clear_cap = None
    for rank, c in reversed(list(enumerate(result.candidates, start=1))):
        x, y, yaw = (float(v) for v in c.q[:3])
        colour = BEST if rank == 1 else OTHER
        clearance = c.metrics.get("clearance_m")
        ring = colour
        if clearance is not None and world is not None:
            clear_cap = max(clear_cap or 0.0, float(clearance))
            ring = cmap(min(max(float(clearance), 0.0) / CLEARANCE_SCALE_M, 1.0))
        if polygon is not None:
            ax.add_patch(Polygon(_placed(polygon, x, y, yaw), closed=True, fill=False,
                                 lw=0.8, color=ring, alpha=0.8, zorder=2))
        elif r > 0:
            ax.add_patch(Circle((x, y), r, fill=False, lw=0.8 if world is not None else 0.6,
                                color=ring, alpha=0.8 if world is not None else 0.5,
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
        what = "polygon" if polygon is not None else f"r = {r:.3f} m"
        handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", color="0.4",
                              label=f"robot footprint ({what}) at each base"))
    if clear_cap is not None:
        for value in (0.0, 0.5 * CLEARANCE_SCALE_M, CLEARANCE_SCALE_M):
            handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none",
                                  color=cmap(value / CLEARANCE_SCALE_M),
                                  label=f"footprint colour: clearance {value:.2f} m"
                                  + (" or more" if value == CLEARANCE_SCALE_M else "")))
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


def _placed(polygon: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """A base-frame polygon ``(E, 2)`` at the base pose ``(x, y, yaw)``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([x + c * polygon[:, 0] - s * polygon[:, 1],
                     y + s * polygon[:, 0] + c * polygon[:, 1]], axis=1)


def draw_world(ax, world) -> list:
    """Draw a world's grid (blocked and unknown cells) and boxes on ``ax``; return handles.

    The grid is drawn in full under everything (the view stays on the grasp); each box
    is its floor plan, darker the higher its top, labelled with its top's height.
    """
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon
    from matplotlib.transforms import Affine2D

    handles = []
    field = world.grid_field
    if field is not None:
        grid = field.grid
        blocked = field.blocked[field.pad:-field.pad, field.pad:-field.pad]
        shown = np.where(blocked & (grid.values >= 0), 2, np.where(grid.values < 0, 1, 0))
        h, w = grid.shape
        res = grid.resolution_m
        x0, y0, yaw = world.grid_pose
        cmap = ListedColormap([(1, 1, 1, 0), (0.75, 0.75, 0.75, 0.5), (0.15, 0.15, 0.15, 0.8)])
        img = ax.imshow(shown, origin="lower", extent=(0, w * res, 0, h * res), cmap=cmap,
                        vmin=0, vmax=2, interpolation="nearest", zorder=0)
        img.set_transform(Affine2D().rotate(yaw).translate(x0, y0) + ax.transData)
        handles.append(Line2D([], [], ls="", marker="s", ms=7, color=(0.15, 0.15, 0.15),
                              label="map: blocked cells"))
        if (grid.values < 0).any():
            handles.append(Line2D([], [], ls="", marker="s", ms=7, color=(0.75, 0.75, 0.75),
                                  label="map: unknown cells"))
    boxes = world.boxes
    if len(boxes):
        tops = boxes.center[:, 2] + 0.5 * boxes.size[:, 2]
        cmap = matplotlib.colormaps["Oranges"]
        for corners, top, name in zip(boxes.corners_xy(), tops, boxes.names):
            shade = cmap(0.3 + 0.6 * min(max(top, 0.0) / 1.0, 1.0))
            ax.add_patch(Polygon(corners, closed=True, fc=(*shade[:3], 0.35), ec=shade,
                                 lw=0.8, zorder=1))
            cx, cy = corners.mean(axis=0)
            ax.annotate(f"{top:.2f} m", (cx, cy), fontsize=6, ha="center", va="center",
                        color="0.25", zorder=1, annotation_clip=True)
        handles.append(Line2D([], [], ls="", marker="s", ms=7, color=cmap(0.6),
                              label=f"boxes ({len(boxes)}): floor plan, top height"))
    return handles
