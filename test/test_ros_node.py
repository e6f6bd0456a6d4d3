"""The stance server node in-process with rclpy (skipped where ROS 2 is not installed).

Starts :class:`StanceServer` with parameter overrides on a MultiThreadedExecutor,
calls ``/propose_stance`` with good and bad requests, and reads the latched topics
with late subscribers. The start-up failures and SIGINT run ``main()`` in a
subprocess (``rclpy.init`` may run once per process).
"""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("tf2_ros")
pytest.importorskip("nav_msgs")

import numpy as np  # noqa: E402
from geometry_msgs.msg import TransformStamped  # noqa: E402
from nav_msgs.srv import GetPlan  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402
import tf2_ros  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from reachability_ros.core.config import StanceConfig  # noqa: E402
from reachability_ros.ros import markers as mk  # noqa: E402
from reachability_ros.ros.conversions import yaw_from_quaternion  # noqa: E402
from reachability_ros.ros.stance_node import (CANDIDATES_TOPIC, MARKERS_TOPIC,  # noqa: E402
                                              REPORT_TOPIC, SERVICE, StanceServer,
                                              latched_qos)

REPO = Path(__file__).resolve().parents[1]
SIDE_GRASP = ((1.0, 0.5, 0.1), (0.0, 0.7071068, 0.0, 0.7071068))  # the README's example
TOP_DOWN_GRASP = ((1.0, 0.5, 0.1), (1.0, 0.0, 0.0, 0.0))  # tool +z pointing down: many stances
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def ros():
    """A started server, a client node and an executor spinning both in a thread."""
    owns_context = not rclpy.ok()
    if owns_context:
        rclpy.init()
    server = StanceServer(parameter_overrides=[
        Parameter("config_file", value=str(REPO / "config" / "lekiwi.yaml")),
        Parameter("target_frame", value="map"),
        Parameter("tf_timeout_s", value=0.3),
        Parameter("proposal.n_samples", value=256),
    ])
    server.start()
    client_node = rclpy.create_node("stance_test_client")
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(server)
    executor.add_node(client_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    client = client_node.create_client(GetPlan, SERVICE)
    assert client.wait_for_service(timeout_sec=TIMEOUT_S)
    yield {"server": server, "node": client_node, "client": client, "executor": executor}
    executor.shutdown()
    thread.join(timeout=5.0)
    client_node.destroy_node()
    server.destroy_node()
    if owns_context and rclpy.ok():
        rclpy.shutdown()


def _read_until_ready(proc, timeout_s=60.0):
    """Lines a node subprocess prints until its 'ready:' line (or EOF, or the timeout)."""
    lines = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ready:" in line:
            break
    return lines


def _request(position=TOP_DOWN_GRASP[0], orientation=TOP_DOWN_GRASP[1], frame="map",
             start=None):
    req = GetPlan.Request()
    req.goal.header.frame_id = frame
    p = req.goal.pose.position
    p.x, p.y, p.z = (float(v) for v in position)
    o = req.goal.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in orientation)
    if start is not None:
        frame_s, (x, y, yaw) = start
        req.start.header.frame_id = frame_s
        req.start.pose.position.x, req.start.pose.position.y = float(x), float(y)
        req.start.pose.orientation.z = math.sin(yaw / 2.0)
        req.start.pose.orientation.w = math.cos(yaw / 2.0)
    return req


def _call(ros, req):
    fut = ros["client"].call_async(req)
    deadline = time.monotonic() + TIMEOUT_S
    while not fut.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fut.done(), "no answer from /propose_stance"
    return fut.result()


def _latched(ros, msg_type, topic):
    """Subscribe late (after the request) and return the last latched message."""
    got = []
    sub = ros["node"].create_subscription(msg_type, topic, got.append, latched_qos())
    deadline = time.monotonic() + TIMEOUT_S
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    ros["node"].destroy_subscription(sub)
    assert got, f"nothing received on {topic}"
    return got[-1]


def _report(ros):
    return json.loads(_latched(ros, String, REPORT_TOPIC).data)


def test_good_request_gives_ranked_poses_in_the_target_frame(ros):
    res = _call(ros, _request())
    plan = res.plan
    assert plan.header.frame_id == "map"
    assert len(plan.poses) >= 2  # a real ranking
    report = _report(ros)
    assert report["ok"] is True and report["header"]["frame_id"] == "map"
    assert report["header"]["stamp"] == {"sec": plan.header.stamp.sec,
                                         "nanosec": plan.header.stamp.nanosec}
    scores = [c["score"] for c in report["candidates"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(plan.poses)
    for ps, cand in zip(plan.poses, report["candidates"]):
        assert ps.header.frame_id == "map"
        assert ps.pose.position.z == 0.0
        assert ps.pose.orientation.x == 0.0 and ps.pose.orientation.y == 0.0
        assert ps.pose.position.x == pytest.approx(cand["base"][0])
        assert ps.pose.position.y == pytest.approx(cand["base"][1])
        q = ps.pose.orientation
        assert yaw_from_quaternion((q.x, q.y, q.z, q.w)) == pytest.approx(cand["base"][2])
        # the base stands within the arm's reach of the grasp
        assert math.hypot(cand["base"][0] - 1.0, cand["base"][1] - 0.5) < 0.8
    traj = _latched(ros, JointTrajectory, CANDIDATES_TOPIC)
    assert traj.header.stamp == plan.header.stamp and traj.header.frame_id == "map"
    assert list(traj.joint_names[:3]) == ["base_x", "base_y", "base_yaw"]
    assert len(traj.joint_names) == 8 and len(traj.points) == len(plan.poses)
    for pt, ps in zip(traj.points, plan.poses):
        assert len(pt.positions) == 8
        assert pt.positions[0] == pytest.approx(ps.pose.position.x)
        assert pt.positions[1] == pytest.approx(ps.pose.position.y)
    assert len({(round(ps.pose.position.x, 3), round(ps.pose.position.y, 3))
                for ps in plan.poses}) == len(plan.poses)
    markers = _latched(ros, MarkerArray, MARKERS_TOPIC).markers
    assert markers[0].action == Marker.DELETEALL
    assert all(m.header.stamp == plan.header.stamp for m in markers)
    ns = {m.ns for m in markers}
    assert {"stances", "stance_labels", "grasp", "frustum"} <= ns
    assert any(n.startswith("samples/") for n in ns)
    frustum = [m for m in markers if m.ns == "frustum"][0]
    assert frustum.type == Marker.LINE_LIST and len(frustum.points) % 2 == 0
    assert mk.MARKER_TYPES["SPHERE_LIST"] == Marker.SPHERE_LIST
    assert mk.MARKER_TYPES["TEXT_VIEW_FACING"] == Marker.TEXT_VIEW_FACING


def test_the_readme_side_grasp(ros):
    res = _call(ros, _request(*SIDE_GRASP))
    assert res.plan.header.frame_id == "map" and len(res.plan.poses) >= 1
    x = res.plan.poses[0].pose.position.x
    assert x < 1.0  # the base stands behind a grasp that approaches along +x


@pytest.mark.parametrize("kwargs, words", [
    ({"position": (float("nan"), 0.5, 0.1)}, "non-finite"),
    ({"orientation": (0.0, 0.0, 0.0, 0.0)}, "unit quaternion"),
    ({"position": (1.0, 0.5, 25.0)}, "height"),
    ({"frame": ""}, "frame_id is empty"),
    ({"frame": "no_such_frame"}, "cannot transform"),
])
def test_bad_requests_get_an_empty_plan_and_a_reason(ros, kwargs, words):
    t0 = time.monotonic()
    res = _call(ros, _request(**kwargs))
    assert time.monotonic() - t0 < 10.0
    assert res.plan.header.frame_id == "map" and len(res.plan.poses) == 0
    report = _report(ros)
    assert report["ok"] is False and words in report["reason"]
    assert report["candidates"] == []
    assert len(_latched(ros, JointTrajectory, CANDIDATES_TOPIC).points) == 0
    # the node is still up and answers a good request
    assert len(_call(ros, _request()).plan.poses) >= 1


def test_goal_in_another_frame_is_transformed_with_tf(ros):
    tf = TransformStamped()
    tf.header.frame_id = "map"
    tf.child_frame_id = "odom_test"
    tf.transform.translation.x, tf.transform.translation.y = 2.0, -1.0
    tf.transform.rotation.z, tf.transform.rotation.w = math.sin(math.pi / 4), math.cos(math.pi / 4)
    broadcaster = tf2_ros.StaticTransformBroadcaster(ros["node"])
    broadcaster.sendTransform(tf)
    # the map grasp expressed in odom_test: p_odom = R^T (p_map - t)
    p_map = np.array(TOP_DOWN_GRASP[0])
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p_odom = R.T @ (p_map - np.array([2.0, -1.0, 0.0]))
    # orientation: q_odom = q_tf^-1 * q_map
    from reachability_ros.core.geometry import matrix_to_quat, quat_to_matrix
    q_odom = matrix_to_quat(R.T @ quat_to_matrix(np.array(TOP_DOWN_GRASP[1])))
    _call(ros, _request())
    direct = _report(ros)
    via_tf = None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:  # the static transform may take a moment to arrive
        via_tf = _call(ros, _request(p_odom, q_odom, frame="odom_test")).plan
        if via_tf.poses:
            break
    assert via_tf.header.frame_id == "map" and len(via_tf.poses) >= 1
    report = _report(ros)
    assert report["goal_frame"] == "odom_test"
    assert report["request"]["frame_id"] == "map"
    # the core saw the grasp expressed in map: same position and rotation as the direct call
    assert report["request"]["position"] == pytest.approx(list(p_map), abs=1e-9)
    R_seen = quat_to_matrix(np.array(report["request"]["orientation"]))
    assert np.allclose(R_seen, quat_to_matrix(np.array(TOP_DOWN_GRASP[1])), atol=1e-9)
    assert report["candidates"][0]["score"] == pytest.approx(
        direct["candidates"][0]["score"], abs=1e-3)
    for ps in via_tf.poses:  # base poses in map, next to the map grasp
        assert ps.header.frame_id == "map"
        assert math.hypot(ps.pose.position.x - p_map[0], ps.pose.position.y - p_map[1]) < 0.8


def test_start_pose_is_used_and_reported(ros):
    res = _call(ros, _request(start=("map", (0.0, 0.0, 0.3))))
    assert len(res.plan.poses) >= 1
    report = _report(ros)
    assert report["start"]["frame_id"] == "map"
    assert any("travel" in k for k in report["candidates"][0]["terms"])
    res = _call(ros, _request(start=("nowhere", (0.0, 0.0, 0.0))))
    assert len(res.plan.poses) >= 1  # an untransformable start is ignored, with a note
    report = _report(ros)
    assert report["start"] is None and any("start pose ignored" in n for n in report["notes"])


def test_concurrent_requests(ros):
    futs = [ros["client"].call_async(_request(position=(1.0 + 0.05 * i, 0.5, 0.1)))
            for i in range(4)]
    deadline = time.monotonic() + TIMEOUT_S
    while not all(f.done() for f in futs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(f.done() and len(f.result().plan.poses) >= 1 for f in futs)


class _FakeBuffer:
    """Stands in for tf2_ros.Buffer: identity into the target frame, or an exception."""

    def __init__(self, fail=None, extrapolate=""):
        self.fail, self.extrapolate, self.stamps = fail, extrapolate, []  # "stamped", "always"

    def transform(self, stamped, target, timeout=None):
        st = stamped.header.stamp
        self.stamps.append((st.sec, st.nanosec))
        if self.fail is not None:
            raise self.fail
        if self.extrapolate == "always" or (self.extrapolate == "stamped"
                                            and (st.sec, st.nanosec) != (0, 0)):
            raise tf2_ros.ExtrapolationException(
                "Lookup would require extrapolation into the past")
        out = type(stamped)()
        out.header.frame_id = target
        out.pose = stamped.pose
        return out


def _assert_empty_answer(ros, res, words):
    assert res.plan.header.frame_id == "map" and len(res.plan.poses) == 0
    report = _report(ros)
    assert report["ok"] is False and words in report["reason"], report["reason"]
    assert "internal error" not in report["reason"]
    traj = _latched(ros, JointTrajectory, CANDIDATES_TOPIC)
    assert len(traj.points) == 0
    assert list(traj.joint_names[:3]) == ["base_x", "base_y", "base_yaw"]
    assert len(traj.joint_names) == 8  # the layout is kept on every failure
    return report


@pytest.mark.parametrize("orientation, words", [
    ((0.0, 0.0, 0.0, 0.0), "unit quaternion"),  # tf2 would turn it into the identity
    ((0.0, 0.0, 0.0, 2.0), "norm is 2"),  # tf2 would normalize it
    ((float("nan"), 0.0, 0.0, 1.0), "non-finite"),  # tf2 would raise LinAlgError
])
def test_a_bad_goal_in_another_frame_is_refused_before_tf(ros, monkeypatch, orientation,
                                                          words):
    fake = _FakeBuffer()
    monkeypatch.setattr(ros["server"], "_tf_buffer", fake)
    res = _call(ros, _request(orientation=orientation, frame="odom_x"))
    report = _assert_empty_answer(ros, res, words)
    assert fake.stamps == []  # no TF call at all
    assert report["request"]["frame_id"] == "odom_x"  # the raw goal is reported


@pytest.mark.parametrize("exc, words", [
    (np.linalg.LinAlgError("Singular matrix"), "LinAlgError: Singular matrix"),
    (tf2_ros.LookupException("frame does not exist"), "cannot transform"),
])
def test_any_transform_exception_is_a_bad_request(ros, monkeypatch, capfd, exc, words):
    monkeypatch.setattr(ros["server"], "_tf_buffer", _FakeBuffer(fail=exc))
    capfd.readouterr()
    res = _call(ros, _request(frame="odom_x"))
    report = _assert_empty_answer(ros, res, words)
    assert report["reason"].startswith("bad request: cannot transform the goal from 'odom_x'")
    log = capfd.readouterr().err
    lines = [ln for ln in log.splitlines() if "[stance_server]" in ln]
    assert len(lines) == 1 and "[WARN]" in lines[0] and "cannot transform" in lines[0], log


def test_a_goal_too_old_for_the_tf_buffer_uses_the_latest_transform(ros, monkeypatch):
    fake = _FakeBuffer(extrapolate="stamped")
    monkeypatch.setattr(ros["server"], "_tf_buffer", fake)
    req = _request(frame="odom_x")
    req.goal.header.stamp.sec, req.goal.header.stamp.nanosec = 100, 5
    res = _call(ros, req)
    assert len(res.plan.poses) >= 1
    assert fake.stamps == [(100, 5), (0, 0)]  # stamped, then the latest
    report = _report(ros)
    assert report["goal_tf_latest"] is True
    assert any("LATEST" in n and "100.000000005" in n for n in report["notes"])
    # a zero stamp that still extrapolates is not retried
    fake.stamps.clear()
    fake.extrapolate = "always"
    res = _call(ros, _request(frame="odom_x"))
    assert fake.stamps == [(0, 0)]
    _assert_empty_answer(ros, res, "ExtrapolationException")
    # a goal in target_frame needs no TF and is not marked
    _call(ros, _request())
    assert _report(ros)["goal_tf_latest"] is False


def test_an_internal_error_keeps_the_joint_names(ros, monkeypatch):
    server = ros["server"]
    real = server._proposer

    class Broken:
        robot, sampler_name, config = real.robot, real.sampler_name, real.config

        def propose(self, grasp, base, rng):
            raise RuntimeError("boom")

    monkeypatch.setattr(server, "_proposer", Broken())
    res = _call(ros, _request())
    assert len(res.plan.poses) == 0
    report = _report(ros)
    assert report["reason"].startswith("internal error: RuntimeError: boom")
    traj = _latched(ros, JointTrajectory, CANDIDATES_TOPIC)
    assert len(traj.joint_names) == 8 and len(traj.points) == 0


def test_publishing_does_not_wait_for_another_computation(ros):
    server = ros["server"]
    with server._compute_lock:  # as if another request were computing
        t0 = time.monotonic()
        res = _call(ros, _request(orientation=(0.0, 0.0, 0.0, 0.0)))
        report = _report(ros)
        assert time.monotonic() - t0 < 5.0
    assert len(res.plan.poses) == 0 and "unit quaternion" in report["reason"]


def test_every_config_key_is_a_parameter_with_a_descriptor(ros):
    server = ros["server"]
    describe = StanceConfig.describe()
    for name, info in describe.items():
        assert server.has_parameter(name), name
        d = server.describe_parameter(name)
        assert d.description.startswith(info["description"])
        if info["range"] is not None and isinstance(info["default"], float):
            assert len(d.floating_point_range) == 1
        if info["range"] is not None and type(info["default"]) is int:
            assert len(d.integer_range) == 1
    assert server.get_parameter("proposal.n_samples").value == 256
    assert server.get_parameter("target_frame").value == "map"
    assert server.describe_parameter("config_file").read_only


def test_parameter_changes_are_validated(ros):
    server = ros["server"]
    ok = server.set_parameters([Parameter("proposal.top_k", value=2)])[0]
    assert ok.successful, ok.reason
    assert 1 <= len(_call(ros, _request()).plan.poses) <= 2
    bad = server.set_parameters([Parameter("proposal.sampler", value="bogus")])[0]
    assert not bad.successful and "bogus" in bad.reason
    assert server.get_parameter("proposal.sampler").value != "bogus"
    out_of_range = server.set_parameters([Parameter("proposal.n_samples", value=0)])[0]
    assert not out_of_range.successful
    assert server.set_parameters([Parameter("proposal.top_k", value=10)])[0].successful
    assert len(_call(ros, _request()).plan.poses) >= 1


# ------------------------------------------------------------------ main() in a subprocess
def _run_main(ros_args, timeout=60):
    code = "from reachability_ros.ros.stance_node import main; raise SystemExit(main())"
    return subprocess.run([sys.executable, "-c", code, "--ros-args", *ros_args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.parametrize("ros_args, words", [
    (["-p", "proposal.model_path:=/no/such/model.onnx"], "not found"),
    (["-p", "proposal.top_k:=2.5"], "expecting type 'INTEGER'"),
    (["-p", "robot.camera.hfov_deg:=70"], "decimal point"),
    (["-p", "proposal.sampler:=bogus"], "bogus"),
])
def test_startup_failures_are_one_fatal_line(ros_args, words):
    out = _run_main(ros_args)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "FATAL" in text and words in text and "Traceback" not in text


def test_a_model_for_another_robot_stops_the_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    cond = helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["B", 7])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 4])
    y = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 9])
    w = numpy_helper.from_array(np.zeros((7, 9), np.float32), "W")
    v = numpy_helper.from_array(np.zeros((4, 9), np.float32), "V")
    graph = helper.make_graph([helper.make_node("MatMul", ["cond", "W"], ["a"]),
                               helper.make_node("MatMul", ["z", "V"], ["b"]),
                               helper.make_node("Add", ["a", "b"], ["x"])],
                              "tiny", [cond, z], [y], [w, v])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"reachability_ros.format": "1",
                                   "reachability_ros.robot": "another_robot",
                                   "reachability_ros.urdf_sha256": "0" * 64})
    path = tmp_path / "other.onnx"
    onnx.save(model, str(path))
    out = _run_main(["-p", f"proposal.model_path:={path}"])
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "FATAL" in text and "ModelMismatch" in text and "Traceback" not in text


def test_sigint_shuts_down_cleanly():
    code = "from reachability_ros.ros.stance_node import main; raise SystemExit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "--ros-args", "-p",
                             "proposal.n_samples:=64"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
                            if os.name == "posix" else None)
    lines = _read_until_ready(proc)
    assert any("ready:" in ln for ln in lines), "".join(lines)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Traceback" not in rest


# ------------------------------------------------------------------ the trainer node
def _run_trainer(ros_args, timeout=300):
    code = "from reachability_ros.ros.trainer_node import main; raise SystemExit(main())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code, "--ros-args", *ros_args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def test_trainer_without_a_config_is_one_fatal_line():
    out = _run_trainer(["-p", "config:=/no/such/train.yaml"])
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "FATAL" in text and "not found" in text, text
    assert "Traceback" not in text
    out = _run_trainer([])
    assert out.returncode == 1 and "config:=" in out.stdout + out.stderr
    out = _run_trainer(["-p", "config:=3"])
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "expecting type 'STRING'" in text and "Traceback" not in text


def test_trainer_trains_exports_and_the_server_loads_the_model(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    out = _run_trainer(["-p", "config:=config/train_tiny.yaml", "-p", f"output_dir:={tmp_path}",
                        "-p", "overrides:=['train.max_epochs=1', 'eval.n_grasps=4']"])
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "[trainer]" in text and "epoch 0" in text and "done:" in text
    model = tmp_path / "model.onnx"
    assert model.is_file()
    # the stance server starts with the freshly exported model (metadata matches the robot)
    code = "from reachability_ros.ros.stance_node import main; raise SystemExit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "--ros-args", "-p",
                             f"proposal.model_path:={model}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = _read_until_ready(proc)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    ready = [ln for ln in lines if "ready:" in ln]
    assert ready and str(model) in ready[0], "".join(lines) + rest
    assert proc.returncode == 0
