"""Top-down pictures of a proposal (matplotlib, Agg backend; imported only when plotting)."""

from __future__ import annotations

import numpy as np

from reachability_ros.core.outcomes import OUTCOME_COLOURS


def plot_result(result, robot, path: str, title: str | None = None) -> None:
    """Write a PNG: sampled donut coloured by outcome, ranked stances, grasp, best frustum.

    Args:
        result: a ProposalResult.
        robot: the WholeBodyModel used.
        path: output PNG file.
        title: optional title.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reachability_ros.core.report import frustum_segments

    fig, ax = plt.subplots(figsize=(7.5, 7.0), dpi=110)
    g = np.asarray(result.grasp.position) if result.grasp is not None else np.zeros(3)
    if result.samples_q is not None:
        q = result.samples_q
        out = result.samples_outcome
        fin = np.all(np.isfinite(q[:, :2]), axis=1)
        for label, colour in OUTCOME_COLOURS.items():
            m = fin & (out == label)
            if m.any():
                ax.scatter(q[m, 0], q[m, 1], s=6, color=colour[:3], alpha=0.6,
                           label=f"{label.replace('_', ' ')} ({int(m.sum())})", linewidths=0)
    for rank, c in enumerate(result.candidates, start=1):
        x, y, yaw = c.q[:3]
        ax.arrow(x, y, 0.08 * np.cos(yaw), 0.08 * np.sin(yaw), width=0.006,
                 color="#d62728" if rank == 1 else "#8c1c13", length_includes_head=True)
        ax.annotate(str(rank), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    if result.candidates:
        segs = frustum_segments(robot, result.candidates[0].q, depth_m=0.6)
        for a, b in segs[:4]:
            ax.plot([a[0], b[0]], [a[1], b[1]], color="#d62728", lw=0.8, alpha=0.7)
    if result.grasp is not None:
        from reachability_ros.core.geometry import quat_to_matrix
        R = quat_to_matrix(np.asarray(result.grasp.orientation))
        a = R[:, 2]
        ax.plot(g[0], g[1], marker="*", ms=16, color="k", label="grasp")
        ax.arrow(g[0], g[1], 0.06 * a[0], 0.06 * a[1], width=0.003, color="k")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
    status = "ok" if result.ok else f"FAILED: {result.reason}"
    ax.set_title(title or f"stances for the grasp at z = {g[2]:.2f} m ({result.sampler}); {status}",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
