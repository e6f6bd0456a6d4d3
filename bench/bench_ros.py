"""Round trip of ``/propose_stance`` with a bare client, next to the core's own time.

Usage (ROS 2 sourced; from the repository root)::

    PYTHONPATH=$PWD python3 bench/bench_ros.py [--n 200] [--warmup 20] [--gap-ms 20]
                                               [--config config/lekiwi.yaml]

It starts the stance server as a subprocess (this Python, the given config,
one thread per math library), waits for its ready line, then, for the same
held-out grasps (``bench_pipeline.held_out_grasps``, seed 2026), in two
interleaved rounds:

- core: ``StanceProposer.propose`` in this process, with the server's seed;
- round trip, back to back: a bare rclpy client (``call_async`` +
  ``spin_until_future_complete``) sends the next request as soon as the answer
  is in, so the companion topics of one request are built while the next is
  answered;
- round trip, paced: the same with ``--gap-ms`` between requests;
- server compute: ``timing_ms.total`` of the server's own reports for the calls.

It prints p50/p99 (ms) of each and whether round-trip p50 <= core p50 + 1.5 ms,
then stops the server with SIGINT and prints how long it took to exit.
Without ROS 2 it says why it skipped and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
THREAD_VARS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
SERVER = 'from reachability_ros.ros.stance_node import main; raise SystemExit(main())'
GOAL_MARGIN_MS = 1.5


def percentile(values, q):
    """Return the value below which q % of the numbers lie (nan for an empty list)."""
    import numpy as np
    return float(np.percentile(values, q)) if len(values) else float('nan')


def start_server(config: str, log_path: Path) -> subprocess.Popen:
    """Start the stance server (output to ``log_path``); return once it is ready."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **dict.fromkeys(THREAD_VARS, '1'))
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, '-c', SERVER, '--ros-args', '-p',
                                 f'config_file:={config}'], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and proc.poll() is None:
        lines = log_path.read_text().splitlines()
        ready = [ln for ln in lines if 'ready:' in ln]
        if ready:
            print('server:', ready[0].strip())
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit('bench_ros: the stance server did not start:\n' + log_path.read_text())


def stop_server(proc: subprocess.Popen) -> None:
    """Send SIGINT; print the exit code and how long the server took to exit."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10.0)
        print(f'server: exit code {proc.returncode} '
              f'{(time.monotonic() - t0) * 1e3:.0f} ms after SIGINT')
    except subprocess.TimeoutExpired:
        proc.kill()
        print('server: still running 10 s after SIGINT (killed)')


def request(grasp):
    """Return the ``GetPlan`` request of a grasp in ``map``."""
    from nav_msgs.srv import GetPlan
    req = GetPlan.Request()
    req.goal.header.frame_id = 'map'
    p, o = req.goal.pose.position, req.goal.pose.orientation
    p.x, p.y, p.z = (float(v) for v in grasp.position)
    o.x, o.y, o.z, o.w = (float(v) for v in grasp.orientation)
    return req


def time_core(proposer, grasps, seed):
    """Time ``propose`` for each grasp (ms) with a fresh generator of the server's seed."""
    import numpy as np
    out = []
    for g in grasps:
        t0 = time.perf_counter()
        proposer.propose(g, None, np.random.default_rng(seed))
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def time_round_trips(node, client, requests, gap_s):
    """Call the service for each request; return the round trips (ms) and pose counts."""
    import rclpy
    times, poses = [], []
    for req in requests:
        t0 = time.perf_counter()
        fut = client.call_async(req)
        rclpy.spin_until_future_complete(node, fut, timeout_sec=30.0)
        times.append((time.perf_counter() - t0) * 1e3)
        poses.append(len(fut.result().plan.poses) if fut.done() else -1)
        if gap_s:
            time.sleep(gap_s)
    return times, poses


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 (also when ROS 2 is missing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=200, help='grasps (calls per mode)')
    parser.add_argument('--warmup', type=int, default=20, help='untimed calls first')
    parser.add_argument('--gap-ms', type=float, default=20.0,
                        help='pause between the paced calls (ms)')
    parser.add_argument('--config', default='config/lekiwi.yaml', help='server config')
    args = parser.parse_args(argv)
    try:
        import rclpy
        from nav_msgs.srv import GetPlan
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
    except ImportError as exc:
        print(f'bench_ros: skipped: ROS 2 is not importable ({exc}); '
              'source /opt/ros/jazzy/setup.bash first')
        return 0
    for var in THREAD_VARS:
        os.environ[var] = '1'
    from bench.bench_pipeline import held_out_grasps
    from reachability_ros.config_io import load_stance_config
    from reachability_ros.core.paths import resolve_data_path
    from reachability_ros.core.pipeline import StanceProposer
    from reachability_ros.ros.parameters import resolve_config_paths

    config_path = str(resolve_data_path(args.config))
    config = resolve_config_paths(load_stance_config(config_path), resolve_data_path)
    proposer = StanceProposer(config)
    grasps = held_out_grasps(proposer.robot, args.n + args.warmup)
    warm, grasps = grasps[:args.warmup], grasps[args.warmup:]
    seed = config.proposal.seed
    print(f'bench_ros: {len(grasps)} grasps, config {config_path}, '
          f'sampler {proposer.sampler_name}, {config.proposal.n_samples} samples')

    log_path = Path(tempfile.mkdtemp(prefix='bench_ros_')) / 'server.log'
    server = start_server(config_path, log_path)
    rclpy.init()
    node = rclpy.create_node('bench_ros_client')
    reports_node = rclpy.create_node('bench_ros_reports')  # spun only after the timing
    reports = []
    qos = QoSProfile(depth=10 * (len(grasps) + args.warmup) + 10,
                     durability=DurabilityPolicy.VOLATILE,
                     reliability=ReliabilityPolicy.RELIABLE)
    reports_node.create_subscription(String, '/propose_stance/report', reports.append, qos)
    try:
        client = node.create_client(GetPlan, '/propose_stance')
        if not client.wait_for_service(timeout_sec=30.0):
            raise SystemExit('bench_ros: /propose_stance did not appear')
        reqs = [request(g) for g in grasps]
        time_round_trips(node, client, [request(g) for g in warm], 0.0)
        time_core(proposer, warm, seed)
        half = len(grasps) // 2
        core, back, paced, poses = [], [], [], []
        for part in (slice(0, half), slice(half, None)):  # two interleaved rounds
            core += time_core(proposer, grasps[part], seed)
            t, p = time_round_trips(node, client, reqs[part], 0.0)
            back, poses = back + t, poses + p
            paced += time_round_trips(node, client, reqs[part], args.gap_ms / 1e3)[0]
        calls = args.warmup + 2 * len(grasps)  # warm-up, then back to back and paced
        deadline = time.monotonic() + 5.0
        while len(reports) < calls and time.monotonic() < deadline:
            rclpy.spin_once(reports_node, timeout_sec=0.05)
        timed = [json.loads(m.data) for m in reports]
        timed = [r for r in timed if r.get('sequence', 0) > args.warmup]  # not the warm-up
        server_ms = [r.get('timing_ms', {}).get('total') for r in timed]
        server_ms = [v for v in server_ms if isinstance(v, (int, float))]
    finally:
        node.destroy_node()
        reports_node.destroy_node()
        rclpy.try_shutdown()
        stop_server(server)
        print(f'server log: {log_path}')

    def row(name, values, p99=True):
        text = f'{name:<36} p50 {percentile(values, 50):7.2f} ms'
        return text + (f'  p99 {percentile(values, 99):7.2f} ms' if p99 else '')
    print(row('core (propose in this process)', core))
    print(row('server compute (reports timing total)', server_ms, p99=False))
    print(row('round trip, back to back', back))
    print(row(f'round trip, {args.gap_ms:g} ms apart', paced))
    answered = sum(1 for p in poses if p > 0)
    print(f'answers with stances: {answered}/{len(poses)}; reports received: '
          f'{len(reports)} of {calls}')
    limit = percentile(core, 50) + GOAL_MARGIN_MS
    for name, values in (('back to back', back), ('paced', paced)):
        p50 = percentile(values, 50)
        print(f'goal ({name}): round-trip p50 {p50:.2f} <= core p50 + {GOAL_MARGIN_MS} = '
              f'{limit:.2f} ms: {"yes" if p50 <= limit else "NO"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
