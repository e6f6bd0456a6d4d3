"""Publish each answer's companion messages after its response, in order, off the request path.

The stance server answers a request as soon as the core has ranked the
stances; the latched companions (candidates, markers, report) take a few
milliseconds more to build and publish, so a :class:`CompanionPublisher`
builds them on its own thread afterwards:

- jobs are handled one at a time in submission order (one worker thread, a
  FIFO queue): nothing is lost or reordered when requests arrive quickly;
- a job runs as a generator of steps, and before each step the worker waits
  until no request is being answered (:meth:`CompanionPublisher.answering`) and
  ``settle_s`` has passed since the last answer left its callback, so that the
  worker does not compete with the interpreter's work on a response; past
  ``backlog_limit`` queued jobs it stops waiting, so a steady stream of
  requests cannot starve it;
- :meth:`CompanionPublisher.close` publishes what is queued within its timeout
  and returns; the thread is a daemon, so it never holds the process at exit.

Plain threading, no ROS: the node passes a function that turns a job into steps.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Any, Callable, Iterable, Iterator

Steps = Callable[[Any], Iterable[Any]]


class CompanionPublisher:
    """One worker thread that runs each submitted job's steps, in order.

    Args:
        steps: ``job -> iterable``; each item yielded is one step, and the worker
            waits for an idle server before each step (e.g. build the trajectory,
            yield, build the markers, yield, build the report, yield, publish).
        settle_s: quiet time after the last answer before a step starts (s).
        backlog_limit: with more queued jobs than this, steps run without waiting.
        on_error: called with the exception when a job raises (the job is dropped,
            the worker goes on); default: ignore.
        name: the worker thread's name.
    """

    def __init__(self, steps: Steps, *, settle_s: float = 0.001, backlog_limit: int = 32,
                 on_error: Callable[[BaseException], None] | None = None,
                 name: str = 'companions') -> None:
        self._steps = steps
        self._settle_s = float(settle_s)
        self._backlog_limit = int(backlog_limit)
        self._on_error = on_error
        self._cond = threading.Condition()
        self._jobs: collections.deque = collections.deque()
        self._answering = 0
        self._last_answer_end = 0.0
        self._closing = False
        self._busy = False
        self.published = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side
    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Mark a request as being answered for the duration of the ``with`` block."""
        with self._cond:
            self._answering += 1
        try:
            yield
        finally:
            with self._cond:
                self._answering -= 1
                self._last_answer_end = time.monotonic()
                self._cond.notify_all()

    def submit(self, job: Any) -> bool:
        """Queue a job; return False (and drop it) once :meth:`close` was called."""
        with self._cond:
            if self._closing:
                return False
            self._jobs.append(job)
            self._cond.notify_all()
            return True

    @property
    def pending(self) -> int:
        """Return the number of jobs queued or being run."""
        with self._cond:
            return len(self._jobs) + (1 if self._busy else 0)

    def close(self, timeout_s: float = 0.5) -> bool:
        """Stop accepting jobs, run the queued ones without waiting, and stop the worker.

        Args:
            timeout_s: the longest wait for the worker (s).

        Returns:
            True when every queued job ran and the worker ended within the timeout.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.0, float(timeout_s)))
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ worker side
    def _wait_for_idle(self) -> None:
        """Block until no request is being answered and the settle time has passed."""
        with self._cond:
            while not self._closing and len(self._jobs) < self._backlog_limit:
                if self._answering:
                    self._cond.wait()
                    continue
                quiet = time.monotonic() - self._last_answer_end
                if quiet >= self._settle_s:
                    return
                self._cond.wait(self._settle_s - quiet)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:  # closing and drained
                    return
                job = self._jobs.popleft()
                self._busy = True
            try:
                for _ in self._iterate(job):
                    pass
                self.published += 1
            except Exception as exc:  # a bad job must not stop the worker
                self.failed += 1
                if self._on_error is not None:
                    with contextlib.suppress(Exception):
                        self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _iterate(self, job: Any) -> Iterator[Any]:
        self._wait_for_idle()
        for step in self._steps(job):
            yield step
            self._wait_for_idle()
