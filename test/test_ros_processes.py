"""The nodes as processes (each test skips, with the reason, without ROS 2).

- start-up failures of both nodes: one FATAL line, exit code 1, no traceback;
- the stance server interrupted 22 times at different moments (right after
  ready, while requests are answered, while a request waits for TF), with
  SIGINT and SIGTERM: it exits within a second with code 0;
- the trainer: its parameters are answered and its progress published while it
  trains; interrupted 10 times (right after start, during training) it exits
  within a second with 130 (SIGINT) or 143 (SIGTERM) and says how to export
  the checkpoint; a finished run's model is accepted by the stance server.
"""

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from ros_support import (assert_exited_within, EXIT_WITHIN_S, have, interrupt,
                         kill_if_running, Lines, process_env, REPO, requires_ros, spun_node,
                         start_node_process, wait_future)


ROS_MODULES = ('rclpy', 'tf2_ros', 'tf2_geometry_msgs', 'tf_transformations', 'nav_msgs',
               'rcl_interfaces', 'std_msgs')
pytestmark = requires_ros(*ROS_MODULES)

if have(*ROS_MODULES):
    from nav_msgs.srv import GetPlan
    from rcl_interfaces.srv import GetParameters
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

SERVER = 'from reachability_ros.ros.stance_node import main; raise SystemExit(main())'
TRAINER = 'from reachability_ros.ros.trainer_node import main; raise SystemExit(main())'


def _run(code, ros_args, timeout=120, cwd=REPO):
    out = subprocess.run([sys.executable, '-c', code, '--ros-args', *ros_args],
                         capture_output=True, text=True, timeout=timeout, cwd=cwd,
                         env=process_env())
    return out.returncode, out.stdout + out.stderr


@pytest.fixture(scope='module')
def client_node():
    with spun_node('process_test_client') as node:
        yield node


def _goal(frame='map'):
    req = GetPlan.Request()
    req.goal.header.frame_id = frame
    req.goal.pose.position.x, req.goal.pose.position.y = 1.0, 0.5
    req.goal.pose.position.z = 0.1
    req.goal.pose.orientation.y = req.goal.pose.orientation.w = 0.7071068
    return req


# ------------------------------------------------------------------ stance server start-up
@pytest.mark.parametrize('ros_args, words', [
    (['-p', 'proposal.model_path:=/no/such/model.onnx'], 'not found'),
    (['-p', 'proposal.top_k:=2.5'], "expecting type 'INTEGER'"),
    (['-p', 'robot.camera.hfov_deg:=70'], 'decimal point'),
    (['-p', 'proposal.sampler:=bogus'], 'bogus'),
    (['-p', 'proposal.n_sample:=64'], "did you mean 'proposal.n_samples'"),
    (['-p', 'config_file:=/no/such/config.yaml'], 'not found'),
])
def test_server_start_up_failures_are_one_fatal_line(ros_args, words):
    code, text = _run(SERVER, ros_args)
    assert code == 1, text
    assert 'FATAL' in text and words in text and 'Traceback' not in text
    assert len([ln for ln in text.splitlines() if 'FATAL' in ln]) == 1


def test_a_model_for_another_robot_stops_the_server(tmp_path):
    onnx = pytest.importorskip('onnx', reason='onnx is not installed (pip install onnx)')
    import numpy as np
    from onnx import helper, numpy_helper, TensorProto
    cond = helper.make_tensor_value_info('cond', TensorProto.FLOAT, ['B', 7])
    z = helper.make_tensor_value_info('z', TensorProto.FLOAT, ['B', 4])
    y = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['B', 9])
    w = numpy_helper.from_array(np.zeros((7, 9), np.float32), 'W')
    v = numpy_helper.from_array(np.zeros((4, 9), np.float32), 'V')
    graph = helper.make_graph([helper.make_node('MatMul', ['cond', 'W'], ['a']),
                               helper.make_node('MatMul', ['z', 'V'], ['b']),
                               helper.make_node('Add', ['a', 'b'], ['x'])],
                              'tiny', [cond, z], [y], [w, v])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    helper.set_model_props(model, {'reachability_ros.format': '1',
                                   'reachability_ros.robot': 'another_robot',
                                   'reachability_ros.urdf_sha256': '0' * 64})
    path = tmp_path / 'other.onnx'
    onnx.save(model, str(path))
    code, text = _run(SERVER, ['-p', f'proposal.model_path:={path}'])
    assert code == 1, text
    assert 'FATAL' in text and 'ModelMismatch' in text and 'Traceback' not in text


# ------------------------------------------------------------------ stance server signals
SERVER_MOMENTS = ([('ready', signal.SIGINT), ('ready', signal.SIGTERM)] * 5
                  + [('requests', signal.SIGINT), ('requests', signal.SIGTERM)] * 5
                  + [('tf_wait', signal.SIGINT), ('tf_wait', signal.SIGTERM)])


@pytest.mark.parametrize('moment, signum', SERVER_MOMENTS)
def test_the_server_exits_within_a_second_of_a_signal(client_node, moment, signum):
    proc = start_node_process(SERVER, ['-p', 'proposal.n_samples:=64',
                                       '-p', 'tf_timeout_s:=5.0'])
    lines = Lines(proc)
    stop_calls = threading.Event()
    try:
        lines.wait_for('ready:')
        if moment != 'ready':
            client = client_node.create_client(GetPlan, '/propose_stance')
            assert client.wait_for_service(timeout_sec=30.0)
            if moment == 'requests':
                answered = []

                def call_forever():
                    while not stop_calls.is_set():
                        res = wait_future(client.call_async(_goal()), 5.0)
                        if res is not None:
                            answered.append(res)
                threading.Thread(target=call_forever, daemon=True).start()
                deadline = time.monotonic() + 30.0
                while len(answered) < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert len(answered) >= 3, lines.text
            else:  # a goal in a frame nobody publishes: the request waits up to 5 s for TF
                client.call_async(_goal(frame='nobody_publishes_this'))
                time.sleep(0.5)
        elapsed = interrupt(proc, lines, signum)
    finally:
        stop_calls.set()
        for client in list(client_node.clients):
            client_node.destroy_client(client)
        kill_if_running(proc)
    assert_exited_within(proc, lines, elapsed, 0)


# ------------------------------------------------------------------ trainer
def _training(out_dir, overrides):
    """Return the trainer's arguments: the tiny config into ``out_dir``, with overrides."""
    return ['-p', 'config:=config/train_tiny.yaml', '-p', f'output_dir:={out_dir}',
            '-p', f'overrides:={overrides}']


def _torch():
    pytest.importorskip('torch', reason='the trainer needs torch (pip install torch)')
    pytest.importorskip('onnx', reason='the trainer needs onnx (pip install onnx)')


@pytest.mark.parametrize('case', ['no_config', 'missing_config', 'not_a_string', 'bad_yaml',
                                  'abc_epochs', 'unknown_override', 'unknown_parameter',
                                  'output_dir'])
def test_trainer_bad_configurations_are_one_fatal_line(tmp_path, case):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('train: [1, 2\n')
    tiny = ['-p', 'config:=config/train_tiny.yaml', '-p', f'output_dir:={tmp_path / "o"}']
    ros_args, words = {
        'no_config': ([], 'config:='),
        'missing_config': (['-p', 'config:=/no/such/train.yaml'], 'not found'),
        'not_a_string': (['-p', 'config:=3'], "expecting type 'STRING'"),
        'bad_yaml': (['-p', f'config:={broken}', '-p', f'output_dir:={tmp_path / "o"}'],
                     ''),
        'abc_epochs': (tiny + ['-p', "overrides:=['train.max_epochs=abc']"], 'max_epochs'),
        'unknown_override': (tiny + ['-p', "overrides:=['train.max_epoch=2']"],
                             'max_epoch'),
        'unknown_parameter': (tiny + ['-p', 'bogus:=1'], 'unknown parameter(s) for trainer'),
        'output_dir': (['-p', 'config:=config/train_tiny.yaml',
                        '-p', f'output_dir:={blocker / "sub"}'], 'output_dir'),
    }[case]
    code, text = _run(TRAINER, ros_args)
    assert code == 1, text
    assert 'FATAL' in text and words in text and 'Traceback' not in text
    assert len([ln for ln in text.splitlines() if 'FATAL' in ln]) == 1


def test_trainer_on_cuda_without_cuda_is_one_fatal_line(tmp_path):
    _torch()
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    code, text = _run(TRAINER, _training(tmp_path, "['train.device=cuda']"))
    assert code == 1 and 'FATAL' in text and 'cuda' in text.lower(), text
    assert 'Traceback' not in text


def test_trainer_trains_exports_and_the_server_loads_the_model(tmp_path):
    _torch()
    code, text = _run(TRAINER, _training(tmp_path, "['train.max_epochs=1', 'eval.n_grasps=4']"),
                      timeout=600)
    assert code == 0, text
    assert '[trainer]' in text and '/1: loss' in text and 'done:' in text
    model = tmp_path / 'model.onnx'
    assert model.is_file()
    proc = start_node_process(SERVER, ['-p', f'proposal.model_path:={model}'])
    lines = Lines(proc)
    try:
        lines.wait_for('ready:')
        assert str(model) in lines.text
        assert interrupt(proc, lines, signal.SIGINT) < EXIT_WITHIN_S
    finally:
        kill_if_running(proc)
    assert proc.returncode == 0, lines.text


def test_trainer_answers_parameters_and_publishes_progress_while_it_trains(client_node,
                                                                           tmp_path):
    _torch()
    proc = start_node_process(TRAINER, _training(tmp_path, "['train.max_epochs=200']"))
    lines = Lines(proc)
    progress = []
    qos = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     reliability=ReliabilityPolicy.RELIABLE)
    sub = client_node.create_subscription(String, '/trainer/progress', progress.append, qos)
    try:
        lines.wait_for('/200: loss', count=2)
        client = client_node.create_client(GetParameters, '/trainer/get_parameters')
        assert client.wait_for_service(timeout_sec=10.0)
        t0 = time.monotonic()
        request = GetParameters.Request(names=['config', 'output_dir'])
        res = wait_future(client.call_async(request), 5.0)
        assert res is not None and time.monotonic() - t0 < 2.0, lines.text
        assert res.values[0].string_value == 'config/train_tiny.yaml'
        assert res.values[1].string_value == str(tmp_path)
        deadline = time.monotonic() + 10.0
        while not progress and time.monotonic() < deadline:
            time.sleep(0.01)
        latest = json.loads(progress[-1].data)
        assert latest['max_epochs'] == 200 and latest['epoch'] >= 1
        assert {'loss', 'val_nll', 'elapsed_s'} <= set(latest)
        elapsed = interrupt(proc, lines, signal.SIGINT)
    finally:
        client_node.destroy_subscription(sub)
        kill_if_running(proc)
    assert elapsed < EXIT_WITHIN_S and proc.returncode == 130, lines.text
    assert 'export_checkpoint' in lines.text and (tmp_path / 'checkpoint.pt').is_file()
    assert 'Traceback' not in lines.text


TRAINER_MOMENTS = ([('started', signal.SIGINT), ('started', signal.SIGTERM)] * 2
                   + [('training', signal.SIGINT), ('training', signal.SIGTERM)] * 3)


@pytest.mark.parametrize('moment, signum', TRAINER_MOMENTS)
def test_the_trainer_exits_within_a_second_of_a_signal(tmp_path, moment, signum):
    _torch()
    proc = start_node_process(TRAINER, _training(tmp_path, "['train.max_epochs=200']"))
    lines = Lines(proc)
    try:
        if moment == 'started':
            lines.wait_for('training from')
        else:
            lines.wait_for('/200: loss')
        elapsed = interrupt(proc, lines, signum)
    finally:
        kill_if_running(proc)
    assert_exited_within(proc, lines, elapsed, 128 + signum)
    assert 'training interrupted' in lines.text
