"""The top-down picture: readable for a success and a failure, a legend for all it draws."""

from dataclasses import replace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from reachability_ros.core.config import ProposalConfig, StanceConfig  # noqa: E402
from reachability_ros.core.pipeline import StanceProposer  # noqa: E402
from reachability_ros.core.types import BasePose, Grasp  # noqa: E402
from reachability_ros.plotting import MIN_EXTENT_M, draw_result, plot_result  # noqa: E402

SIDE = (0.0, 0.7071068, 0.0, 0.7071068)
DOWN = (1.0, 0.0, 0.0, 0.0)  # tool +z pointing down: the full top-k


@pytest.fixture(scope="module")
def proposer(robot):
    cfg = StanceConfig(proposal=ProposalConfig(sampler="grid", n_samples=1024, top_k=4))
    return StanceProposer(cfg, robot)


def _legend(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def _title_lines(fig):
    return fig.axes[0].get_title(loc="left").splitlines()


def test_a_success_has_a_legend_entry_for_everything_drawn(robot, proposer):
    r = proposer.propose(Grasp((2.0, 1.0, 0.1), DOWN, "map"), rng=np.random.default_rng(0))
    assert r.ok and len(r.candidates) == 4
    radius = proposer.diagnosis.facts.footprint_radius_m
    fig = draw_result(r, robot, current_base=BasePose(1.0, 0.5, 0.3), footprint_radius_m=radius)
    try:
        labels = _legend(fig)
        ax = fig.axes[0]
        for outcome, n in r.funnel.items():
            if outcome in ("proposed", "feasible", "not_in_top_k", "returned") or not n:
                continue
            assert f"sample: {outcome.replace('_', ' ')} ({n})" in labels
        assert f"sample: kept ({r.funnel['feasible']})" in labels
        for words in ("best stance (#1)", "ranked stances #2-#4", "front camera view of #1",
                      f"robot footprint (r = {radius:.3f} m)", "current base",
                      "grasp at z = 0.10 m"):
            assert any(label.startswith(words) for label in labels), (words, labels)
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        assert len(circles) == 4 + 1  # each stance and the current base
        assert all(c.get_radius() == pytest.approx(radius) for c in circles)
        assert "4 ranked stances" in " ".join(_title_lines(fig))
    finally:
        plt.close(fig)


def test_a_failure_is_readable(robot, proposer):
    r = proposer.propose(Grasp((1.0, 0.0, 0.8), SIDE, "map"), rng=np.random.default_rng(0))
    assert not r.ok
    r = replace(r, sampler="model:manifold_flow (/home/someone/secret/models/m.onnx)")
    fig = draw_result(r, robot)
    try:
        ax = fig.axes[0]
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x1 - x0 >= MIN_EXTENT_M - 1e-9 and y1 - y0 >= MIN_EXTENT_M - 1e-9
        lines = _title_lines(fig)
        title = " ".join(lines)
        assert len(lines) > 1 and all(len(line) <= 110 for line in lines)
        assert "NO STANCE: unreachable: of 1024 proposals" in title
        assert "(m.onnx)" in title and "/home" not in title and "secret" not in title
        fig.canvas.draw()
        box = ax.title.get_window_extent(fig.canvas.get_renderer())
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
        assert any(label.startswith("grasp at z = 0.80 m") for label in _legend(fig))
    finally:
        plt.close(fig)


def test_a_far_current_base_keeps_the_view_on_the_grasp(robot, proposer):
    g = Grasp((1e4, -1e4, 0.1), (1.0, 0.0, 0.0, 0.0), "map")
    r = proposer.propose(g, BasePose(0.0, 0.0, 0.0), rng=np.random.default_rng(0))
    assert r.ok
    fig = draw_result(r, robot, current_base=BasePose(0.0, 0.0, 0.0), footprint_radius_m=0.15)
    try:
        ax = fig.axes[0]
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x0 < 1e4 < x1 and y0 < -1e4 < y1 and x1 - x0 < 3.0
        texts = [t.get_text() for t in ax.texts]
        assert "current base 14142.1 m from the grasp" in texts
    finally:
        plt.close(fig)


def test_plot_files_are_written_whole(tmp_path, robot, proposer):
    r = proposer.propose(Grasp((2.0, 1.0, 0.1), SIDE, "map"), rng=np.random.default_rng(0))
    for name in ("p.png", "p.svg", "p.pdf"):
        plot_result(r, robot, str(tmp_path / name), footprint_radius_m=0.15)
        assert (tmp_path / name).stat().st_size > 5_000
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="cannot write a plot as"):
        plot_result(r, robot, str(tmp_path / "p.xyz"))
    with pytest.raises(OSError):
        plot_result(r, robot, str(tmp_path / "missing" / "p.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pdf", "p.png", "p.svg"]


def test_a_world_is_drawn_with_footprints_coloured_by_clearance(robot, proposer, tmp_path):
    from matplotlib.image import AxesImage
    from matplotlib.patches import Polygon

    from reachability_ros.core.world import Boxes, OccupancyGrid
    values = np.zeros((40, 40), np.int8)
    values[:, 34:] = 100  # a wall 1.7 m from the grid's corner (the grid is turned by 0.3)
    values[:2] = -1
    grid = OccupancyGrid(values, 0.05, (1.0, 0.0, 0.3))
    boxes = Boxes.from_records([{"name": "bin", "center": [2.4, 1.4, 0.1],
                                 "size": [0.2, 0.3, 0.2], "yaw": 0.4}])
    world = proposer.scene.prepare(grid, boxes)
    r = proposer.propose(Grasp((2.0, 1.0, 0.1), DOWN, "map"), rng=np.random.default_rng(0),
                         world=world)
    assert r.ok
    radius = proposer.scene.footprint_outer_m
    fig = draw_result(r, robot, footprint_radius_m=radius, world=world)
    try:
        ax = fig.axes[0]
        labels = _legend(fig)
        for words in ("map: blocked cells", "map: unknown cells", "boxes (1): floor plan",
                      "footprint colour: clearance 0.00 m", "sample: base collision"):
            assert any(label.startswith(words) for label in labels), (words, labels)
        images = [a for a in ax.get_children() if isinstance(a, AxesImage)]
        assert len(images) == 1 and images[0].get_array().shape == (40, 40)
        boxes_drawn = [p for p in ax.patches if isinstance(p, Polygon)]
        assert len(boxes_drawn) == 1
        assert np.allclose(boxes_drawn[0].get_xy()[:4], boxes.corners_xy()[0])
        rings = {c.get_edgecolor() for c in ax.patches if isinstance(c, Circle)}
        assert len(rings) >= 1  # coloured by clearance, not by rank
    finally:
        plt.close(fig)
    square = np.array([[0.2, 0.2], [0.2, -0.2], [-0.2, -0.2], [-0.2, 0.2]])
    fig = draw_result(r, robot, footprint_radius_m=radius, world=world,
                      footprint_polygon=square)
    try:
        polys = [p for p in fig.axes[0].patches if isinstance(p, Polygon)]
        assert len(polys) == 1 + len(r.candidates)  # the box and one footprint each
    finally:
        plt.close(fig)
    plot_result(r, robot, str(tmp_path / "world.png"), footprint_radius_m=radius, world=world)
    assert (tmp_path / "world.png").stat().st_size > 10_000
