"""Signals, bounded waits and exit codes of the nodes (plain logic, no ROS).

The subprocess tests run a stand-in for a node's ``main()`` built from the same
helpers (start-up, a polling spin loop, a thread pool like the executor's, a
companion worker, bounded clean-up) and interrupt it at different moments: it
must exit within a second with the expected code and no traceback. The real
nodes get the same treatment where ROS is installed (``test_ros_processes.py``).
"""

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import pytest
from reachability_ros.ros import lifecycle

REPO = Path(__file__).resolve().parents[1]

NODE_STAND_IN = r"""
import concurrent.futures, itertools, sys, time
from reachability_ros.ros.companions import CompanionPublisher
from reachability_ros.ros.lifecycle import (
    clean_up, exit_now, lingering_threads, ShutdownRequest, spin_until, SPIN_PERIOD_S)

startup_s = float(sys.argv[1])
stop = ShutdownRequest(raise_on_signal=True)
stop.install()
pool = companions = None
code = 0
counter = itertools.count(1)


def spin_once():                                 # one request, then wait for the next
    n = next(counter)
    with companions.answering():                # a request: work in the pool
        pool.submit(sum, range(20000)).result()
        companions.submit(n)
    stop.wait(SPIN_PERIOD_S / 10)                # stands in for spin_once(timeout)
    if n == 3:
        print('working', flush=True)


try:
    print('starting', flush=True)
    time.sleep(startup_s)                       # loading the model
    pool = concurrent.futures.ThreadPoolExecutor(2)   # non-daemon workers, as rclpy's
    companions = CompanionPublisher(lambda job: iter(range(3)), settle_s=0.0)
    stop.set_polling()
    print('ready', flush=True)
    spin_until(spin_once, stop.is_set, on_error=print)
except KeyboardInterrupt:
    pass
finally:
    stop.set_polling()
    stop.second_exit_code = code
    stop.request()
    steps = []
    if pool is not None:
        steps.append((lambda: pool.shutdown(wait=True), 0.3))
    if companions is not None:
        steps.append((lambda: companions.close(0.2), 0.3))
    clean_up(steps, code)
print('bye', flush=True)
if lingering_threads():
    exit_now(code)
sys.exit(code)
"""


def start(startup_s=0.0):
    return subprocess.Popen([sys.executable, '-c', NODE_STAND_IN, str(startup_s)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


def read_until(proc, word, timeout_s=10.0):
    lines = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if word in line:
            return lines
    raise AssertionError(f'no {word!r} line: {"".join(lines)}')


def interrupt_and_time(proc, signum):
    t0 = time.monotonic()
    proc.send_signal(signum)
    try:
        rest, _ = proc.communicate(timeout=5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError('did not exit within 5 s')
    return time.monotonic() - t0, rest


# moment, signal: 20 runs in all
MOMENTS = [('startup', signal.SIGINT), ('startup', signal.SIGTERM),
           ('ready', signal.SIGINT), ('ready', signal.SIGTERM)] * 3 + \
          [('working', signal.SIGINT), ('working', signal.SIGTERM)] * 4


@pytest.mark.parametrize('moment, signum', MOMENTS)
def test_the_stand_in_exits_within_a_second_of_a_signal(moment, signum):
    proc = start(startup_s=5.0 if moment == 'startup' else 0.0)
    read_until(proc, 'starting' if moment == 'startup' else moment)
    elapsed, rest = interrupt_and_time(proc, signum)
    assert elapsed < 1.0, rest
    assert proc.returncode == 0, rest
    assert 'Traceback' not in rest and 'bye' in rest


def test_a_second_signal_ends_a_stuck_clean_up_at_once():
    code = (
        'import sys, time\n'
        'from reachability_ros.ros.lifecycle import ShutdownRequest\n'
        'stop = ShutdownRequest(raise_on_signal=False)\n'
        'stop.install()\n'
        'stop.second_exit_code = 3\n'
        "print('ready', flush=True)\n"
        'while not stop.is_set():\n'
        '    time.sleep(0.01)\n'
        "print('cleaning', flush=True)\n"
        'time.sleep(30)\n')
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    read_until(proc, 'ready')
    proc.send_signal(signal.SIGINT)
    read_until(proc, 'cleaning')
    proc.send_signal(signal.SIGINT)  # the same Ctrl-C delivered twice: ignored
    time.sleep(lifecycle.DUPLICATE_WINDOW_S + 0.2)
    assert proc.poll() is None
    elapsed, rest = interrupt_and_time(proc, signal.SIGTERM)
    assert elapsed < 1.0 and proc.returncode == 3 and 'Traceback' not in rest


def test_shutdown_request_records_the_first_signal_and_restores_handlers():
    stop = lifecycle.ShutdownRequest(raise_on_signal=False, on_second_signal=lambda c: None)
    before = signal.getsignal(signal.SIGTERM)
    stop.install([signal.SIGTERM])
    try:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(1.0) and stop.signum == signal.SIGTERM
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_in_start_up_mode_a_signal_raises_keyboard_interrupt():
    stop = lifecycle.ShutdownRequest(raise_on_signal=True)
    stop.install([signal.SIGUSR1])
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1.0)
        assert stop.is_set() and stop.signum == signal.SIGUSR1
    finally:
        stop.restore()


def test_a_second_signal_calls_the_exit_with_the_code():
    exits = []
    stop = lifecycle.ShutdownRequest(raise_on_signal=False, on_second_signal=exits.append)
    stop.second_exit_code = 7
    stop.install([signal.SIGUSR1])
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.wait(1.0) and exits == []
        os.kill(os.getpid(), signal.SIGUSR1)  # within the duplicate window: ignored
        time.sleep(0.05)
        assert exits == []
        time.sleep(lifecycle.DUPLICATE_WINDOW_S)
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 1.0
        while not exits and time.monotonic() < deadline:
            time.sleep(0.001)
        assert exits == [7]
    finally:
        stop.restore()


class FakeClock:
    """A clock that advances only when it sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, dt):
        self.now += dt


def test_poll_until_returns_when_done():
    clock, calls = FakeClock(), []

    def done():
        calls.append(clock.now)
        return clock.now >= 0.05
    assert lifecycle.poll_until(done, 1.0, lambda: False, 0.01, clock.sleep, clock)
    assert calls[-1] == pytest.approx(0.05) and len(calls) == 6


def test_poll_until_gives_up_at_the_timeout_and_on_stop():
    clock = FakeClock()
    assert not lifecycle.poll_until(lambda: False, 0.1, lambda: False, 0.03, clock.sleep, clock)
    assert clock.now == pytest.approx(0.1)
    clock = FakeClock()
    assert not lifecycle.poll_until(lambda: False, 10.0, lambda: clock.now >= 0.2, 0.01,
                                    clock.sleep, clock)
    assert clock.now == pytest.approx(0.2)
    clock = FakeClock()
    assert not lifecycle.poll_until(lambda: False, 0.0, lambda: False, 0.01, clock.sleep, clock)
    assert clock.now == 0.0  # timeout 0: one check, no sleep


def test_run_with_deadline():
    assert lifecycle.run_with_deadline(lambda: None, 1.0)
    assert lifecycle.run_with_deadline(lambda: 1 / 0, 1.0)  # raising is finishing
    t0 = time.monotonic()
    assert not lifecycle.run_with_deadline(lambda: time.sleep(5.0), 0.1)
    assert time.monotonic() - t0 < 0.5


def test_lingering_threads_are_the_live_non_daemon_ones():
    release = threading.Event()
    t = threading.Thread(target=release.wait)
    d = threading.Thread(target=release.wait, daemon=True)
    t.start()
    d.start()
    try:
        lingering = lifecycle.lingering_threads()
        assert t in lingering and d not in lingering
    finally:
        release.set()
        t.join()
    assert t not in lifecycle.lingering_threads()


def test_interrupted_exit_codes_are_the_shells():
    assert lifecycle.interrupted_exit_code(signal.SIGINT) == 130
    assert lifecycle.interrupted_exit_code(signal.SIGTERM) == 143
    assert lifecycle.interrupted_exit_code(None) == 130


class Shutdown(Exception):
    """Stands in for rclpy's ExternalShutdownException."""


def test_spin_until_reports_a_failing_callback_and_keeps_spinning():
    calls, errors, pauses = [], [], []

    def spin_once():
        calls.append(len(calls))
        if len(calls) in (2, 3):
            raise RuntimeError(f'callback {len(calls)} failed')
    lifecycle.spin_until(spin_once, lambda: len(calls) >= 6, errors.append,
                         error_pause_s=0.25, pause=pauses.append)
    assert len(calls) == 6  # the failures did not end the loop
    assert [str(e) for e in errors] == ['callback 2 failed', 'callback 3 failed']
    assert pauses == [0.25, 0.25]


def test_spin_until_ends_on_done_on_shutdown_and_lets_keyboard_interrupt_through():
    calls = []
    lifecycle.spin_until(calls.append, lambda: True, lambda e: None)
    assert calls == []  # done before the first call

    def shut_down():
        calls.append('x')
        raise Shutdown
    errors = []
    lifecycle.spin_until(shut_down, lambda: False, errors.append, ends=(Shutdown,))
    assert calls == ['x'] and errors == []

    def interrupted():
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        lifecycle.spin_until(interrupted, lambda: False, errors.append)
    assert errors == []


def test_clean_up_runs_the_steps_in_order():
    done, exits = [], []
    ok = lifecycle.clean_up([(lambda: done.append(1), 1.0), (lambda: 1 / 0, 1.0),
                             (lambda: done.append(3) or True, 1.0)], 5, exits.append)
    assert ok and done == [1, 3] and exits == []  # raising counts as done


@pytest.mark.parametrize('failing', ['hangs', 'returns_false'])
def test_clean_up_exits_with_the_code_when_a_step_hangs_or_fails(failing):
    done, exits = [], []
    bad = (lambda: time.sleep(5.0)) if failing == 'hangs' else (lambda: False)
    t0 = time.monotonic()
    ok = lifecycle.clean_up([(lambda: done.append(1), 1.0), (bad, 0.1),
                             (lambda: done.append(3), 1.0)], 7, exits.append)
    assert not ok and exits == [7] and done == [1]  # the later steps are skipped
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize('codes, signum, expected', [
    ('STANCE_SERVER_CODES', signal.SIGINT, 0), ('STANCE_SERVER_CODES', signal.SIGTERM, 0),
    ('STANCE_NAVIGATOR_CODES', signal.SIGINT, 0), ('STANCE_NAVIGATOR_CODES', signal.SIGTERM, 0),
    ('TRAINER_CODES', signal.SIGINT, 130), ('TRAINER_CODES', signal.SIGTERM, 143)])
def test_a_signal_while_the_node_is_still_importing_exits_quietly(codes, signum, expected):
    """The entry point's guard: no traceback, the node's own exit code for that signal."""
    code = ('import os, signal, time\n'
            'from reachability_ros.ros import entry\n'
            f'entry.guard_start_up(entry.{codes})\n'
            f'os.kill(os.getpid(), {int(signum)})\n'
            'time.sleep(5)\n'
            'print("not reached")\n')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=30, cwd=REPO)
    assert res.returncode == expected
    assert res.stdout == '' and res.stderr == ''


def test_a_node_that_cannot_be_imported_is_one_fatal_line_and_exit_code_1():
    """E.g. the navigator where nav2_msgs is not installed: no traceback."""
    code = ('import importlib, sys\n'
            'from reachability_ros.ros import entry\n'
            'def missing(module):\n'
            '    raise ModuleNotFoundError(MESSAGE, name=NAME)\n'
            'importlib.import_module = missing\n'
            'sys.exit(entry.stance_navigator())\n')
    code = code.replace('MESSAGE', repr(MISSING)).replace('NAME', repr('nav2_msgs'))
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=30, cwd=REPO)
    assert res.returncode == 1 and res.stdout == ''
    (line,) = res.stderr.splitlines()
    assert line.startswith('[FATAL] [stance_navigator]: cannot start: ModuleNotFoundError: '
                           + MISSING)
    assert 'sudo apt install ros-$ROS_DISTRO-nav2-msgs' in line


MISSING = "No module named 'nav2_msgs'"
