"""The ROS layer's pure functions, tested without rclpy or message packages."""

import ast
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from reachability_ros.config_io import load_stance_config, parameters_section
from reachability_ros.core.config import StanceConfig
from reachability_ros.core.errors import ConfigError, InvalidRequest
from reachability_ros.core.geometry import quat_to_matrix
from reachability_ros.core.types import BasePose, Candidate, Grasp, ProposalResult
from reachability_ros.ros import conversions as conv
from reachability_ros.ros import markers as mk

REPO = Path(__file__).resolve().parents[1]
JOINTS = ("base_x", "base_y", "base_yaw", "arm_shoulder_pan", "arm_shoulder_lift",
          "arm_elbow_flex", "arm_wrist_flex", "arm_wrist_roll")
SIDE_GRASP_Q = (0.0, 0.7071068, 0.0, 0.7071068)  # the README's example: tool +z along +x


def make_result(n_candidates=3, ok=True):
    """A hand-made ProposalResult: candidates best first, 9 raw samples, 4 outcomes."""
    rng = np.random.default_rng(7)
    cands = []
    for i in range(n_candidates):
        q = np.concatenate([[0.5 + 0.1 * i, -0.2 * i, 0.3 * i - 0.4], rng.normal(size=5)])
        cands.append(Candidate(q, 3.0 - i, {"visibility": 0.1 * i}, {"visible": True}))
    samples = rng.normal(size=(9, 8))
    samples[8, 0] = np.nan  # a non-finite proposal is not drawn
    outcomes = np.array(["kept", "kept", "unreachable", "unreachable", "unreachable",
                         "not_visible", "occluded", "occluded", "kept"])
    return ProposalResult(ok, "" if ok else "unreachable: of 9 proposals 3 unreachable",
                          cands if ok else [], JOINTS, {"proposed": 9}, {"total": 1.0},
                          "test", samples, outcomes, Grasp((1.0, 0.5, 0.1), SIDE_GRASP_Q, "map"))


# ------------------------------------------------------------------ poses
@pytest.mark.parametrize("yaw", [0.0, 0.3, -1.2, math.pi - 1e-6, -math.pi + 1e-6, 2.5])
def test_yaw_quaternion_round_trip(yaw):
    q = conv.quaternion_from_yaw(yaw)
    assert q[0] == 0.0 and q[1] == 0.0
    assert math.isclose(math.hypot(q[2], q[3]), 1.0, rel_tol=1e-12)
    assert math.isclose(conv.yaw_from_quaternion(q), yaw, abs_tol=1e-9)
    # not normalized: same heading
    assert math.isclose(conv.yaw_from_quaternion([3 * v for v in q]), yaw, abs_tol=1e-9)
    R = quat_to_matrix(np.array(q))
    assert np.allclose(R[:2, 0], [math.cos(yaw), math.sin(yaw)])


def test_yaw_of_a_tilted_quaternion_is_the_heading_of_its_x_axis():
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = rng.normal(size=4)
        R = quat_to_matrix(q)
        assert math.isclose(conv.yaw_from_quaternion(q), math.atan2(R[1, 0], R[0, 0]),
                            abs_tol=1e-9)


@pytest.mark.parametrize("q", [(0.0, 0.0, 0.0, 0.0), (0.0, 0.0, float("nan"), 1.0),
                               (float("inf"), 0.0, 0.0, 1.0)])
def test_yaw_of_bad_quaternions_is_an_invalid_request(q):
    with pytest.raises(InvalidRequest):
        conv.yaw_from_quaternion(q)


def test_readme_side_grasp_quaternion_points_the_tool_along_plus_x():
    R = quat_to_matrix(np.array(SIDE_GRASP_Q))
    assert np.allclose(R[:, 2], [1.0, 0.0, 0.0], atol=1e-6)
    texts = [p.read_text() for p in (REPO / "docs" / "ros.md", REPO / "README.md") if p.exists()]
    assert any("orientation: {x: 0.0, y: 0.7071068, z: 0.0, w: 0.7071068}" in t for t in texts)


def test_grasp_from_pose_keeps_values_and_does_not_validate():
    g = conv.grasp_from_pose((1, 2, 3), (0, 0, 0, 2), "map")
    assert g == Grasp((1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 2.0), "map")
    assert all(isinstance(v, float) for v in g.position + g.orientation)
    nan = conv.grasp_from_pose((float("nan"), 0, 0), (0, 0, 0, 1), "map")
    assert math.isnan(nan.position[0])  # the core rejects it, not the conversion
    with pytest.raises(InvalidRequest):
        conv.grasp_from_pose((1, 2), (0, 0, 0, 1), "map")


def test_start_pose_empty_frame_is_unknown():
    assert conv.base_pose_from_start("", (1.0, 2.0, 0.0), (0, 0, 0, 1)) is None
    assert conv.base_pose_from_start("  ", (1.0, 2.0, 0.0), (0, 0, 0, 1)) is None
    b = conv.base_pose_from_start("/map", (1.0, 2.0, 5.0), conv.quaternion_from_yaw(0.7))
    assert isinstance(b, BasePose)
    assert (b.x, b.y) == (1.0, 2.0) and math.isclose(b.yaw, 0.7)
    with pytest.raises(InvalidRequest):
        conv.base_pose_from_start("map", (float("nan"), 0.0, 0.0), (0, 0, 0, 1))
    with pytest.raises(InvalidRequest):
        conv.base_pose_from_start("map", (0.0, 0.0, 0.0), (0, 0, 0, 0))


def test_normalize_frame_id():
    assert conv.normalize_frame_id("/map") == "map"
    assert conv.normalize_frame_id(" odom ") == "odom"
    assert conv.normalize_frame_id("") == ""
    with pytest.raises(InvalidRequest):
        conv.normalize_frame_id(None)


def test_plan_poses_are_ranked_on_the_floor_with_yaw_quaternions():
    result = make_result()
    poses = conv.plan_poses(result)
    assert len(poses) == len(result.candidates)
    for pose, cand in zip(poses, result.candidates):
        assert pose.position == (float(cand.q[0]), float(cand.q[1]), 0.0)
        assert math.isclose(conv.yaw_from_quaternion(pose.orientation), cand.q[2], abs_tol=1e-12)
        assert pose.orientation[:2] == (0.0, 0.0)
        assert all(type(v) is float for v in pose.position + pose.orientation)
    assert conv.plan_poses(None) == []
    assert conv.plan_poses(make_result(ok=False)) == []


def test_trajectory_layout_matches_the_poses():
    result = make_result()
    names, rows = conv.trajectory_layout(result)
    assert names == list(JOINTS)
    assert names[:3] == ["base_x", "base_y", "base_yaw"]
    assert len(rows) == 3 and all(len(r) == 8 for r in rows)
    for row, cand in zip(rows, result.candidates):
        assert row == [float(v) for v in cand.q]
        assert all(type(v) is float for v in row)
    names, rows = conv.trajectory_layout(None, JOINTS)
    assert names == list(JOINTS) and rows == []
    bad = make_result()
    bad.candidates[0].q = bad.candidates[0].q[:5]
    with pytest.raises(ValueError):
        conv.trajectory_layout(bad)


# ------------------------------------------------------------------ markers
def _numeric_fields_are_floats(spec):
    vals = list(spec["position"]) + list(spec["orientation"]) + list(spec["scale"])
    vals += list(spec["color"])
    for p in spec["points"]:
        vals += list(p)
    for c in spec["colors"]:
        vals += list(c)
    return all(type(v) is float for v in vals)


def test_marker_constants_are_the_message_constants():
    # visualization_msgs/msg/Marker (docs/ros2-jazzy-reference.md)
    assert mk.MARKER_TYPES["ARROW"] == 0 and mk.MARKER_TYPES["LINE_LIST"] == 5
    assert mk.MARKER_TYPES["SPHERE_LIST"] == 7 and mk.MARKER_TYPES["TEXT_VIEW_FACING"] == 9
    assert mk.MARKER_ACTIONS == {"ADD": 0, "DELETE": 2, "DELETEALL": 3}


def test_markers_start_with_deleteall_and_have_unique_ids():
    result = make_result()
    frustum = np.arange(8 * 2 * 3, dtype=float).reshape(8, 2, 3) / 10.0
    specs = mk.marker_specs(result, frustum=frustum)
    assert specs[0]["action"] == mk.MARKER_ACTIONS["DELETEALL"]
    assert all(s["action"] == mk.MARKER_ACTIONS["ADD"] for s in specs[1:])
    keys = [(s["ns"], s["id"]) for s in specs[1:]]
    assert len(keys) == len(set(keys))
    assert all(_numeric_fields_are_floats(s) for s in specs)
    assert all(isinstance(s["id"], int) and isinstance(s["text"], str) for s in specs)


def test_sample_markers_are_coloured_by_outcome():
    result = make_result()
    samples = [s for s in mk.marker_specs(result) if s["ns"].startswith("samples/")]
    by_ns = {s["ns"]: s for s in samples}
    assert set(by_ns) == {"samples/kept", "samples/unreachable", "samples/not_visible",
                          "samples/occluded"}
    assert len(by_ns["samples/kept"]["points"]) == 2  # the third 'kept' row is NaN
    assert len(by_ns["samples/unreachable"]["points"]) == 3
    for name, spec in by_ns.items():
        assert spec["type"] == mk.MARKER_TYPES["SPHERE_LIST"]
        assert spec["color"] == mk.OUTCOME_COLOURS[name.split("/", 1)[1]]
        assert all(p[2] == mk.SAMPLE_HEIGHT_M for p in spec["points"])
    pts = {tuple(p[:2]) for s in samples for p in s["points"]}
    finite = result.samples_q[np.all(np.isfinite(result.samples_q[:, :2]), axis=1)]
    assert pts == {(float(x), float(y)) for x, y in finite[:, :2]}
    colours = [mk.outcome_colour(o) for o in mk.OUTCOME_COLOURS]
    assert len(set(colours)) == len(colours)
    other = mk.outcome_colour("a_new_stage")
    assert other == mk.outcome_colour("a_new_stage") and len(other) == 4


def test_stance_arrows_and_rank_labels():
    result = make_result()
    specs = mk.marker_specs(result)
    arrows = [s for s in specs if s["ns"] == "stances"]
    labels = [s for s in specs if s["ns"] == "stance_labels"]
    assert [a["id"] for a in arrows] == [1, 2, 3]
    assert [t["text"] for t in labels] == ["#1", "#2", "#3"]
    assert arrows[0]["color"] == mk.BEST_COLOUR and arrows[1]["color"] == mk.OTHER_COLOUR
    for a, c in zip(arrows, result.candidates):
        assert a["type"] == mk.MARKER_TYPES["ARROW"]
        assert a["position"][:2] == (c.q[0], c.q[1])
        assert math.isclose(mk.yaw_of_arrow(a), c.q[2], abs_tol=1e-12)
    assert all(t["type"] == mk.MARKER_TYPES["TEXT_VIEW_FACING"] for t in labels)


def test_grasp_axes_point_along_the_grasp_frame():
    specs = mk.marker_specs(make_result())
    axes = sorted((s for s in specs if s["ns"] == "grasp"), key=lambda s: s["id"])
    assert len(axes) == 3
    R = quat_to_matrix(np.array(SIDE_GRASP_Q))
    for i, a in enumerate(axes):
        start, end = np.array(a["points"][0]), np.array(a["points"][1])
        assert np.allclose(start, [1.0, 0.5, 0.1])
        assert np.allclose((end - start) / mk.AXIS_LENGTH_M, R[:, i], atol=1e-6)
    assert np.allclose(np.array(axes[2]["points"][1]) - axes[2]["points"][0],
                       [mk.AXIS_LENGTH_M, 0, 0], atol=1e-6)  # approach axis along +x
    # a NaN grasp draws no axes but does not fail
    nan = Grasp((float("nan"), 0.0, 0.0), (0, 0, 0, 1), "map")
    assert mk.grasp_markers(nan) == []
    assert mk.grasp_markers(Grasp((0.0, 0.0, 0.0), (0, 0, 0, 0), "map")) == []


def test_frustum_is_a_line_list_of_the_best_stance_only():
    frustum = np.random.default_rng(1).normal(size=(8, 2, 3))
    specs = mk.marker_specs(make_result(), frustum=frustum)
    lines = [s for s in specs if s["ns"] == "frustum"]
    assert len(lines) == 1 and lines[0]["type"] == mk.MARKER_TYPES["LINE_LIST"]
    assert len(lines[0]["points"]) == 16
    assert np.allclose(np.array(lines[0]["points"]), frustum.reshape(-1, 3))
    failed = mk.marker_specs(make_result(ok=False), frustum=frustum)
    assert not [s for s in failed if s["ns"] in ("frustum", "stances")]
    assert [s for s in failed if s["ns"].startswith("samples/")]  # the donut still shows why
    assert mk.frustum_marker(np.zeros((3, 3))) == []


def test_markers_without_a_result_only_delete():
    specs = mk.marker_specs(None)
    assert len(specs) == 1 and specs[0]["action"] == mk.MARKER_ACTIONS["DELETEALL"]
    g = Grasp((1.0, 0.0, 0.2), (0, 0, 0, 1), "map")
    assert [s["ns"] for s in mk.marker_specs(None, grasp=g)] == ["", "grasp", "grasp", "grasp"]


# ------------------------------------------------------------------ parameters
def test_parameter_specs_cover_every_config_key_with_ranges():
    describe = StanceConfig.describe()
    specs = conv.parameter_specs()
    assert [s.name for s in specs] == list(describe)
    for s in specs:
        info = describe[s.name]
        assert s.description.startswith(info["description"])
        assert s.type_id == conv.PARAMETER_TYPES[s.type]
        if info["range"] is not None and s.type in ("integer", "double"):
            lo, hi = s.range
            assert lo <= s.default <= hi
            if info["range"][0] is not None:
                assert lo == pytest.approx(info["range"][0])
            if info["range"][1] is not None:
                assert hi == pytest.approx(info["range"][1])
            assert "range" in s.description
            assert type(lo) is type(hi) is (int if s.type == "integer" else float)
        else:
            assert s.range is None
    types = {s.name: s.type for s in specs}
    assert types["robot.camera.hfov_deg"] == "double"
    assert types["robot.camera.width"] == "integer"
    assert types["robot.arm_joints"] == "string_array"
    assert types["proposal.top_k"] == "integer"
    assert types["proposal.model_path"] == "string"
    assert all(s.default == info["default"] for s, info in zip(specs, describe.values()))


def test_parameter_specs_take_defaults_from_a_config_file_and_coerce_ints():
    specs = {s.name: s for s in conv.parameter_specs(
        defaults={"robot.camera.hfov_deg": 60, "proposal.top_k": 3})}
    assert specs["robot.camera.hfov_deg"].default == 60.0
    assert type(specs["robot.camera.hfov_deg"].default) is float
    assert specs["proposal.top_k"].default == 3
    with pytest.raises(ConfigError, match="proposal.top_k"):
        conv.parameter_specs(defaults={"proposal.top_k": 2.5})
    with pytest.raises(ConfigError, match="robot.name"):
        conv.parameter_specs(defaults={"robot.name": 3})


def test_node_parameter_specs():
    specs = {s.name: s for s in conv.node_parameter_specs()}
    assert set(specs) == set(conv.NODE_PARAMETERS)
    assert specs["target_frame"].default == "map"
    assert specs["config_file"].read_only
    assert specs["tf_timeout_s"].type == "double" and specs["tf_timeout_s"].range == (0.0, 60.0)
    assert specs["tf_timeout_s"].default == 1.0  # short: SIGINT waits for a running TF wait
    assert "SIGINT" in specs["tf_timeout_s"].description


def test_parameter_file_types_match_the_declared_types():
    """config/lekiwi.yaml is also the ROS parameter file: rclpy refuses 1 for a double."""
    data = yaml.safe_load((REPO / "config" / "lekiwi.yaml").read_text())
    assert "stance_server" in data and "ros__parameters" in data["stance_server"]
    flat = StanceConfig.from_dict(parameters_section(data)).to_flat()
    raw = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
            else:
                raw[prefix + k] = v
    walk(parameters_section(data))
    assert set(raw) <= set(flat)
    for s in conv.parameter_specs():
        if s.name not in raw:
            continue
        v = raw[s.name]
        expected = {"double": float, "integer": int, "string": str, "bool": bool}.get(s.type)
        if expected is not None:
            assert type(v) is expected, f"{s.name}: {v!r} in lekiwi.yaml must be a {s.type}"
        else:
            assert isinstance(v, list) and v, f"{s.name} must be a non-empty list"


def test_config_from_parameters_round_trip_and_validation():
    cfg = load_stance_config()
    values = {s.name: s.default for s in conv.parameter_specs(defaults=cfg.to_flat())}
    values.update({"target_frame": "map", "tf_timeout_s": 1.0, "config_file": ""})
    assert conv.config_from_parameters(values) == cfg
    import array
    values["robot.arm_joints"] = list(cfg.robot.arm_joints)
    values["proposal.top_k"] = np.int64(4)
    assert conv.config_from_parameters(values).proposal.top_k == 4
    assert conv.plain_parameter_value(array.array("d", [1.0, 2.0])) == [1.0, 2.0]
    bad = dict(values, **{"proposal.n_samples": 0})
    with pytest.raises(ConfigError, match="n_samples"):
        conv.config_from_parameters(bad)
    with pytest.raises(ConfigError, match="typo"):
        conv.config_from_parameters(dict(values, **{"proposal.typo": 1}))


def test_resolve_config_paths(tmp_path):
    cfg = StanceConfig.from_flat({"proposal.model_path": "models/nope.onnx"})
    with pytest.raises(ConfigError, match="nope.onnx"):
        conv.resolve_config_paths(cfg, lambda p: tmp_path / p)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"x")
    cfg = StanceConfig.from_flat({"proposal.model_path": "models/m.onnx"})
    out = conv.resolve_config_paths(cfg, lambda p: tmp_path / p)
    assert out.proposal.model_path == str((tmp_path / "models" / "m.onnx").resolve())
    no_model = StanceConfig.from_flat({"proposal.model_path": ""})
    assert conv.resolve_config_paths(no_model, lambda p: tmp_path / p) == no_model


# ------------------------------------------------------------------ reports and requests
def test_json_safe_gives_strict_json():
    obj = {"a": float("nan"), "b": [np.float32(1.5), np.int64(2), float("inf")],
           "c": np.array([1.0, -np.inf]), "d": (True, None, "x"), 3: BasePose(0, 0, 0)}
    text = json.dumps(conv.json_safe(obj), allow_nan=False)
    back = json.loads(text)
    assert back["a"] == "nan" and back["b"] == [1.5, 2, "inf"] and back["c"] == [1.0, "-inf"]
    assert back["d"] == [True, None, "x"] and isinstance(back["3"], str)


class FakeProposer:
    """Records calls; answers with make_result() or raises what the core would."""

    sampler_name = "fake"

    class robot:  # noqa: N801
        joint_names = JOINTS

    def __init__(self):
        self.calls = []

    def propose(self, grasp, base, rng):
        from reachability_ros.core.pipeline import validate_grasp
        from reachability_ros.core.config import ProposalConfig
        validate_grasp(grasp, ProposalConfig())
        self.calls.append((grasp, base))
        return make_result()


def _to_dict(result):
    from reachability_ros.core.report import result_to_dict
    return result_to_dict(result)


def test_propose_response_success_with_a_fake_proposer():
    p = FakeProposer()
    goal = conv.PoseInput("map", (1.0, 0.5, 0.1), SIDE_GRASP_Q)
    start = conv.PoseInput("map", (0.2, 0.1, 0.0), conv.quaternion_from_yaw(0.5))
    seen = []
    r = conv.propose_response(p, goal, start, lock=threading.Lock(),
                              frustum=lambda robot, q: seen.append(q) or np.zeros((8, 2, 3)))
    assert r.ok and r.reason == ""
    grasp, base = p.calls[0]
    assert grasp.position == (1.0, 0.5, 0.1) and math.isclose(base.yaw, 0.5)
    assert len(r.poses) == 3 and len(r.positions) == 3 and r.joint_names == list(JOINTS)
    assert np.allclose(seen[0], make_result().candidates[0].q)  # frustum of the best
    assert r.frustum.shape == (8, 2, 3)
    scores = [c["score"] for c in r.report["candidates"]]
    assert scores == sorted(scores, reverse=True)
    bases = [c["base"][:2] for c in r.report["candidates"]]
    assert bases == [list(pose.position[:2]) for pose in r.poses]
    json.dumps(conv.json_safe(r.report), allow_nan=False)
    r = conv.propose_response(p, goal, conv.PoseInput("", (0, 0, 0), (0, 0, 0, 0)),
                              frustum=lambda robot, q: None)
    assert r.ok and p.calls[-1][1] is None  # empty start frame: unknown, not an error


@pytest.mark.parametrize("goal, start, match", [
    (((float("nan"), 0.5, 0.1), SIDE_GRASP_Q), None, "non-finite"),
    (((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 0.0)), None, "unit quaternion"),
    (((1.0, 0.5, 50.0), SIDE_GRASP_Q), None, "height"),
    (((1.0, 0.5, 0.1), SIDE_GRASP_Q), ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)), "quaternion"),
])
def test_propose_response_bad_requests_become_failed_answers(goal, start, match):
    p = FakeProposer()
    s = None if start is None else conv.PoseInput("map", *start)
    r = conv.propose_response(p, conv.PoseInput("map", *goal), s, to_dict=_to_dict,
                              frustum=lambda robot, q: None)
    assert not r.ok and r.poses == [] and r.positions == [] and r.result is None
    assert r.reason.startswith("bad request:") and match in r.reason
    assert r.joint_names == list(JOINTS)
    assert r.report["ok"] is False and r.report["reason"] == r.reason
    assert set(r.report) >= {"ok", "reason", "request", "candidates", "funnel", "timing_ms"}
    json.dumps(conv.json_safe(r.report), allow_nan=False)
    assert "\n" not in r.reason


# ------------------------------------------------------------------ raw goal, TF decisions
@pytest.mark.parametrize("position, orientation, match", [
    ((float("nan"), 0.5, 0.1), SIDE_GRASP_Q, "position has non-finite"),
    ((1.0, float("inf"), 0.1), SIDE_GRASP_Q, "position has non-finite"),
    ((1.0, 0.5, 0.1), (float("nan"), 0.0, 0.0, 1.0), "orientation has non-finite"),
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 0.0), "unit quaternion"),  # tf2 would make it identity
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 2.0), "norm is 2"),  # tf2 would normalize it
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 1.01), "unit quaternion"),
    ((1.0, 0.5), SIDE_GRASP_Q, "3 position and 4 quaternion"),
    ((1.0, 0.5, 0.1), (0.0, 0.0, 1.0), "3 position and 4 quaternion"),
    ((1.0, "a", 0.1), SIDE_GRASP_Q, "must be numbers"),
])
def test_check_raw_goal_refuses_what_tf2_would_hide(position, orientation, match):
    with pytest.raises(InvalidRequest, match=match):
        conv.check_raw_goal(position, orientation, 1e-3)


def test_check_raw_goal_accepts_unit_quaternions_at_any_height_and_uses_the_tolerance():
    from reachability_ros.core.config import ProposalConfig
    from reachability_ros.core.pipeline import validate_grasp
    conv.check_raw_goal((1.0, 0.5, 0.1), SIDE_GRASP_Q, 1e-3)
    conv.check_raw_goal((1.0, 0.5, 25.0), (0.0, 0.0, 0.0, 1.0), 1e-3)  # height: not here
    conv.check_raw_goal((1.0, 0.5, -3.0), (0.0, 0.0, 0.0, 1.0005), 1e-3)
    with pytest.raises(InvalidRequest):
        conv.check_raw_goal((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 1.0005), 1e-4)
    conv.check_raw_goal((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 1.2), 0.5)
    # same norm rule as the core's validate_grasp, for in-range heights
    cfg = ProposalConfig()
    rng = np.random.default_rng(11)
    for _ in range(200):
        q = rng.normal(size=4)
        q *= rng.uniform(0.998, 1.002) / np.linalg.norm(q)
        try:
            validate_grasp(Grasp((1.0, 0.5, 0.1), tuple(q), "map"), cfg)
            core_ok = True
        except InvalidRequest:
            core_ok = False
        try:
            conv.check_raw_goal((1.0, 0.5, 0.1), q, cfg.quaternion_tolerance)
            raw_ok = True
        except InvalidRequest:
            raw_ok = False
        assert raw_ok == core_ok


def test_check_raw_start():
    conv.check_raw_start("", (float("nan"),) * 3, (0.0, 0.0, 0.0, 0.0))  # unknown start
    conv.check_raw_start("odom", (1.0, 2.0, float("nan")), (0.0, 0.0, 0.0, 3.0))  # z unused
    with pytest.raises(InvalidRequest, match="non-finite"):
        conv.check_raw_start("odom", (float("nan"), 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    with pytest.raises(InvalidRequest, match="quaternion"):
        conv.check_raw_start("odom", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))
    with pytest.raises(InvalidRequest, match="non-finite"):
        conv.check_raw_start("odom", (0.0, 0.0, 0.0), (0.0, 0.0, float("nan"), 1.0))


def test_retry_with_latest_only_for_extrapolation_of_a_real_stamp():
    assert conv.retry_with_latest(True, 1700000000, 5)
    assert conv.retry_with_latest(True, 0, 1)
    assert not conv.retry_with_latest(True, 0, 0)  # already the latest: nothing to retry
    assert not conv.retry_with_latest(False, 1700000000, 0)  # unknown frame: same at stamp 0
    assert conv.is_stamp_zero(0, 0) and not conv.is_stamp_zero(1, 0)
    note = conv.latest_transform_note("goal", "odom", "map", 12, 5,
                                      "Lookup would require\nextrapolation into the past")
    assert "LATEST" in note and "12.000000005" in note and "'odom'" in note
    assert "\n" not in note and note.startswith("goal ")


def test_transform_failure_reason_names_frames_and_the_exception():
    class LookupException(Exception):
        pass
    r = conv.transform_failure_reason("odom", "map", 0.3, LookupException("no\nframe"))
    assert r.startswith("bad request: cannot transform the goal from 'odom' to 'map'")
    assert "0.3 s" in r and "LookupException: no frame" in r and "\n" not in r
    r = conv.transform_failure_reason("odom", "map", 1.0, np.linalg.LinAlgError("Singular"))
    assert "LinAlgError: Singular" in r and "internal" not in r


def test_failure_response_keeps_the_joint_layout():
    r = conv.failure_response("bad request: x", JOINTS, {"frame_id": "odom"}, "flow")
    assert not r.ok and r.poses == [] and r.positions == [] and r.result is None
    assert r.joint_names == list(JOINTS) and len(r.joint_names) == 8
    assert r.report["reason"] == "bad request: x" and r.report["sampler"] == "flow"
    assert r.report["request"] == {"frame_id": "odom"} and r.report["candidates"] == []
    names, rows = conv.trajectory_layout(r.result, r.joint_names)
    assert names == list(JOINTS) and rows == []
    json.dumps(conv.json_safe(r.report), allow_nan=False)


@pytest.fixture(scope="module")
def proposer():
    from reachability_ros.core.pipeline import StanceProposer
    return StanceProposer(load_stance_config())


def test_propose_response_with_the_real_core(proposer):
    goal = conv.PoseInput("map", (1.0, 0.5, 0.1), SIDE_GRASP_Q)
    r = conv.propose_response(proposer, goal, None, np.random.default_rng(0),
                              lock=threading.Lock())
    assert r.ok, r.reason
    assert r.frustum.ndim == 3 and r.frustum.shape[1:] == (2, 3)
    T = proposer.robot.fk(np.array(r.positions), [proposer.robot.config.tool_frame])
    tool = T[proposer.robot.config.tool_frame]
    assert np.allclose(tool[:, :3, 3], [1.0, 0.5, 0.1], atol=1e-3)
    for pose, q in zip(r.poses, r.positions):
        assert pose.position == (q[0], q[1], 0.0)
    specs = mk.marker_specs(r.result, frustum=r.frustum)
    assert len([s for s in specs if s["ns"] == "stances"]) == len(r.poses)
    text = json.dumps(conv.json_safe(r.report), allow_nan=False)
    assert json.loads(text)["request"]["frame_id"] == "map"
    # determinism: the same request and seed give the same answer
    r2 = conv.propose_response(proposer, goal, None, np.random.default_rng(0))
    assert np.allclose(np.array(r.positions), np.array(r2.positions))


def test_propose_response_is_safe_under_concurrent_requests(proposer):
    lock = threading.Lock()
    goals = [conv.PoseInput("map", (1.0 + 0.1 * i, 0.5, 0.1), SIDE_GRASP_Q) for i in range(4)]
    out = [None] * 4

    def run(i):
        out[i] = conv.propose_response(proposer, goals[i], None, np.random.default_rng(0),
                                       lock=lock)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        ref = conv.propose_response(proposer, goals[i], None, np.random.default_rng(0))
        assert out[i].ok and np.allclose(np.array(out[i].positions), np.array(ref.positions))


# ------------------------------------------------------------------ files and isolation
def test_pure_modules_import_without_ros():
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "B = ('rclpy', 'launch', 'launch_ros', 'tf2_ros', 'tf2_geometry_msgs', 'geometry_msgs',"
        " 'nav_msgs', 'std_msgs', 'visualization_msgs', 'trajectory_msgs', 'rcl_interfaces')\n"
        "def g(name, *a, **k):\n"
        "    if name.split('.')[0] in B: raise ImportError('blocked: ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = g\n"
        "import reachability_ros.ros, reachability_ros.ros.conversions, "
        "reachability_ros.ros.markers\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in B]\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_launch_file_declares_its_arguments_and_nodes():
    src = (REPO / "launch" / "lekiwi.launch.py").read_text()
    tree = ast.parse(src)
    args = [c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
            and getattr(c.func, "id", "") == "DeclareLaunchArgument"]
    assert args == ["model", "config", "target_frame", "use_rviz"]
    assert "generate_launch_description" in {f.name for f in tree.body
                                             if isinstance(f, ast.FunctionDef)}
    for needle in ('executable="stance_server"', '"lekiwi.yaml"', '"lekiwi.rviz"',
                   "IfCondition(LaunchConfiguration(\"use_rviz\"))", "OpaqueFunction"):
        assert needle in src


def _load_launch_with_fakes(monkeypatch):
    """Import launch/lekiwi.launch.py against minimal fakes of launch and launch_ros."""
    import importlib.util
    import types

    class Arg:
        def __init__(self, name, **kw):
            self.name, self.kw = name, kw

        def perform(self, context):
            return context[self.name]

    class Node:
        def __init__(self, **kw):
            self.kw = kw

    mods = {
        "launch": {"LaunchDescription": lambda items: list(items)},
        "launch.actions": {"DeclareLaunchArgument": Arg,
                           "OpaqueFunction": lambda function: function},
        "launch.conditions": {"IfCondition": lambda c: ("if", c.name)},
        "launch.substitutions": {"LaunchConfiguration": Arg,
                                 "PathJoinSubstitution": lambda parts: "/".join(parts)},
        "launch_ros": {}, "launch_ros.actions": {"Node": Node},
        "launch_ros.substitutions": {"FindPackageShare": lambda pkg: f"<share {pkg}>"},
    }
    for name, attrs in mods.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    spec = importlib.util.spec_from_file_location("lekiwi_launch",
                                                  REPO / "launch" / "lekiwi.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("frame, expected", [("odom", "odom"), (" /odom ", "odom"),
                                             ("", "map"), ("map", "map")])
def test_launch_gives_rviz_the_target_frame_as_fixed_frame(monkeypatch, frame, expected):
    launch = _load_launch_with_fakes(monkeypatch)
    context = {"target_frame": frame, "config": "/c.yaml", "model": "", "use_rviz": "true"}
    (rviz,) = launch._rviz(context)
    args = rviz.kw["arguments"]
    assert rviz.kw["executable"] == "rviz2"
    assert args[0] == "-d" and args[1].endswith("config/lekiwi.rviz")
    assert args[2:] == ["-f", expected]  # rviz2 --fixed-frame overrides the file's 'map'
    assert rviz.kw["condition"] == ("if", "use_rviz")
    (server,) = launch._stance_server(context)
    assert server.kw["parameters"][1]["target_frame"] == expected  # same frame as the node
    items = launch.generate_launch_description()
    assert launch._rviz in items and launch._stance_server in items


def test_rviz_config_shows_the_latched_markers():
    rviz = yaml.safe_load((REPO / "config" / "lekiwi.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    arrays = [d for d in displays if d["Class"] == "rviz_default_plugins/MarkerArray"]
    assert len(arrays) == 1
    topic = arrays[0]["Topic"]
    assert topic["Value"] == "/propose_stance/markers"
    assert topic["Durability Policy"] == "Transient Local"
    assert topic["Reliability Policy"] == "Reliable"
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"
    for outcome in mk.OUTCOME_COLOURS:
        assert f"samples/{outcome}" in arrays[0]["Namespaces"]


def test_setup_installs_the_launch_and_rviz_files_and_entry_points():
    setup = (REPO / "setup.py").read_text()
    assert 'tree("launch"' in setup and 'tree("config"' in setup
    assert "stance_server = reachability_ros.ros.stance_node:main" in setup
    assert "trainer = reachability_ros.ros.trainer_node:main" in setup


def test_every_pipeline_outcome_has_a_marker_colour():
    from reachability_ros.core.pipeline import OUTCOMES
    from reachability_ros.ros import markers
    assert set(OUTCOMES) | {"kept"} <= set(markers.OUTCOME_COLOURS)
