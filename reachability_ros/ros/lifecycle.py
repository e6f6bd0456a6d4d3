"""Start-up and shutdown of the nodes as plain logic: signals, bounded waits, exit codes.

Both nodes exit within a second of SIGINT or SIGTERM, whatever they are doing:

- rclpy's own signal handlers are not installed (``SignalHandlerOptions.NO``):
  in Jazzy they ignore SIGTERM, and a KeyboardInterrupt raised asynchronously
  inside the executor can leave a worker thread of the MultiThreadedExecutor
  that nothing wakes, which holds the interpreter at exit;
- :class:`ShutdownRequest` installs handlers that only set a flag once the node
  spins (the main thread polls it between short ``spin_once`` calls, and long
  waits such as TF lookups poll it too); before that, during start-up, a signal
  raises ``KeyboardInterrupt`` at once, which is safe because no executor exists;
- a second signal while shutting down exits at once (``os._exit``), unless it comes
  within :data:`DUPLICATE_WINDOW_S` of the first: a Ctrl-C in the terminal of
  ``ros2 launch`` reaches a node twice (from the terminal and from launch);
- the spin loops survive a failing callback (:func:`spin_until`);
- clean-up steps run under deadlines (:func:`clean_up`) and, if a non-daemon
  thread is still alive at the end, :func:`exit_now` ends the process.

Nothing here imports ROS.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable

#: How often the main thread checks for a shutdown request between ``spin_once`` calls (s).
SPIN_PERIOD_S = 0.1

#: The signals that end a node.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: A signal this soon after the first one is the same request delivered twice (s).
DUPLICATE_WINDOW_S = 0.5


class ShutdownRequest:
    """A flag set by SIGINT or SIGTERM (or by code), safe to poll from any thread.

    Args:
        raise_on_signal: start in the start-up mode, in which a signal raises
            ``KeyboardInterrupt`` in the main thread (call :meth:`set_polling` once
            the executor exists).
        on_second_signal: called with :attr:`second_exit_code` when a signal comes
            after shutdown was already requested (default :func:`exit_now`).
    """

    def __init__(self, raise_on_signal: bool = True,
                 on_second_signal: Callable[[int], None] | None = None) -> None:
        self._event = threading.Event()
        self._raise = bool(raise_on_signal)
        self._on_second_signal = on_second_signal
        self._first_at: float | None = None
        self._previous: dict[int, object] = {}
        self.signum: int | None = None
        self.second_exit_code = 0

    def install(self, signals: Iterable[int] = STOP_SIGNALS) -> None:
        """Install the handlers (main thread only); :meth:`restore` puts the old ones back."""
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the handlers that :meth:`install` replaced."""
        for signum, handler in self._previous.items():
            with contextlib.suppress(Exception):
                signal.signal(signum, handler)
        self._previous.clear()

    def set_polling(self) -> None:
        """Leave the start-up mode: from now on a signal only sets the flag."""
        self._raise = False

    def request(self, signum: int | None = None) -> None:
        """Ask for shutdown (as a signal would, without raising)."""
        if self.signum is None and signum is not None:
            self.signum = int(signum)
        if self._first_at is None:
            self._first_at = time.monotonic()
        self._event.set()

    def is_set(self) -> bool:
        """Tell whether shutdown was requested."""
        return self._event.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until shutdown is requested or the timeout passes; return the flag."""
        return self._event.wait(timeout_s)

    def _handle(self, signum: int, frame: object) -> None:
        if self._event.is_set():  # a second signal: the user insists, unless it is a duplicate
            if time.monotonic() - (self._first_at or 0.0) > DUPLICATE_WINDOW_S:
                (self._on_second_signal or exit_now)(self.second_exit_code)
            return
        self.request(signum)
        if self._raise:
            raise KeyboardInterrupt


def poll_until(done: Callable[[], bool], timeout_s: float, should_stop: Callable[[], bool],
               period_s: float = 0.02, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> bool:
    """Poll ``done()`` until it is true, the timeout passes or ``should_stop()`` is true.

    Used instead of tf2's blocking waits, which a shutdown cannot interrupt.

    Args:
        done: the condition (e.g. ``buffer.can_transform(...)`` with no timeout).
        timeout_s: the longest wait (s); 0 checks once.
        should_stop: polled between checks; True ends the wait early.
        period_s: time between checks (s).
        sleep: the sleep function (tests pass a fake).
        clock: a monotonic clock (s).

    Returns:
        The last value of ``done()``.
    """
    deadline = clock() + max(0.0, float(timeout_s))
    while True:
        if done():
            return True
        now = clock()
        if now >= deadline or should_stop():
            return False
        sleep(min(period_s, deadline - now))


def spin_until(spin_once: Callable[[], object], done: Callable[[], bool],
               on_error: Callable[[Exception], None], ends: tuple = (),
               error_pause_s: float = SPIN_PERIOD_S,
               pause: Callable[[float], object] = time.sleep) -> None:
    """Call ``spin_once()`` until ``done()`` is true; a failing callback does not end the loop.

    rclpy re-raises a callback's exception from ``spin_once``. A node must not
    stop serving (or, for the TF listener, stop filling its buffer for good)
    because one callback failed, so the exception is reported and spinning goes
    on after a short pause (a failure that repeats cannot spin the CPU).

    Args:
        spin_once: runs at most one callback (e.g. ``executor.spin_once(timeout_sec=...)``).
        done: checked before each call; True ends the loop.
        on_error: called with any exception ``spin_once`` raises that is not in ``ends``.
        ends: exception types that end the loop quietly (rclpy's
            ``ExternalShutdownException``: the context was shut down).
            ``KeyboardInterrupt`` is not caught.
        error_pause_s: pause after a reported exception (s).
        pause: the pause function (e.g. ``threading.Event.wait``, which a
            shutdown request cuts short).
    """
    while not done():
        try:
            spin_once()
        except ends:
            return
        except Exception as exc:  # a callback's bug: report it and keep spinning
            on_error(exc)
            pause(error_pause_s)


def run_with_deadline(fn: Callable[[], object], timeout_s: float,
                      name: str = 'cleanup') -> bool:
    """Run ``fn`` on a daemon thread and wait at most ``timeout_s`` for it.

    Returns:
        True when ``fn`` returned (or raised) within the timeout; False when it
        is still running (it is abandoned: a daemon thread never holds the exit).
    """
    thread = threading.Thread(target=lambda: _quietly(fn), name=name, daemon=True)
    thread.start()
    thread.join(max(0.0, float(timeout_s)))
    return not thread.is_alive()


def _quietly(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        fn()


def clean_up(steps: Iterable[tuple[Callable[[], object], float]], code: int,
             exit_fn: Callable[[int], None] | None = None) -> bool:
    """Run clean-up steps in order, each under its own deadline; exit at once if one fails.

    A step fails when it is still running at its deadline (it is abandoned on
    a daemon thread) or returns False (e.g. a worker it stops did not stop).
    A hung rclpy or DDS call must not keep a node alive after SIGINT, so the
    process then ends at once with ``code`` and the remaining steps are
    skipped. A step that raises counts as done.

    Args:
        steps: ``(fn, timeout_s)`` pairs, run in order.
        code: the exit code if a step fails.
        exit_fn: called with ``code`` when a step fails (default :func:`exit_now`).

    Returns:
        True when every step finished in time (False only when ``exit_fn`` returns).
    """
    for fn, timeout_s in steps:
        returned: list = []
        finished = run_with_deadline(lambda fn=fn: returned.append(fn()), timeout_s)
        if not finished or returned == [False]:
            (exit_fn or exit_now)(code)
            return False
    return True


def lingering_threads() -> list[threading.Thread]:
    """Return the live non-daemon threads other than the caller (they would hold the exit)."""
    me = threading.current_thread()
    return [t for t in threading.enumerate()
            if t is not me and t.is_alive() and not t.daemon
            and t is not threading.main_thread()]


def exit_now(code: int) -> None:
    """End the process at once with ``code``, after flushing the standard streams."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(int(code))


def interrupted_exit_code(signum: int | None) -> int:
    """Return the shell's exit code of a process ended by ``signum`` (128 + n; 130 for SIGINT)."""
    return 128 + int(signum if signum is not None else signal.SIGINT)
