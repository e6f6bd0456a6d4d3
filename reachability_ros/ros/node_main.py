"""The main loop of the long-running nodes: start, spin until SIGINT or SIGTERM, stop in time.

Shared by the stance server and the stance navigator (imported only by the nodes). The
signal handling and the bounded clean-up are plain logic in :mod:`.lifecycle`; this
module wires them to rclpy: ``rclpy.init`` without rclpy's own signal handlers, the
node's start-up (one FATAL line and exit code 1 when it cannot start), ``spin_once``
in a loop that polls the shutdown request, then each clean-up step under a deadline.
"""

from __future__ import annotations

from typing import Any, Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

from .lifecycle import (clean_up, exit_now, lingering_threads, ShutdownRequest, SPIN_PERIOD_S,
                        spin_until)
from .parameters import startup_message

#: Deadlines of the clean-up steps after SIGINT or SIGTERM (s).
EXECUTOR_SHUTDOWN_S = 0.3
THREAD_STOP_S = 0.2


def run_node(name: str, make_node: Callable[[ShutdownRequest], Any],
             make_executor: Callable[[], Executor], args: list[str] | None = None, *,
             before_spin: Callable[[], None] | None = None,
             stop_first: Callable[[Any], None] | None = None) -> int:
    """Run a node until SIGINT or SIGTERM; return the process exit code.

    Args:
        name: the node's name, for the FATAL line when the node could not be built.
        make_node: builds the node from the process's shutdown request; the node has
            ``start()``, ``log_ready()`` and ``close(timeout_s) -> bool``.
        make_executor: builds the executor that spins the node.
        args: command-line arguments for ``rclpy.init``.
        before_spin: called once before spinning (process-wide settings).
        stop_first: called with the node before the executor stops (e.g. to stop the
            base), under a deadline.

    Returns:
        0 after SIGINT or SIGTERM; 1 when the node cannot start (a bad configuration,
        an unknown parameter, a model or description that does not fit), logged as
        one FATAL line without a traceback.
    """
    stop = ShutdownRequest(raise_on_signal=True)
    stop.install()
    node: Any = None
    executor: Executor | None = None
    code = 0
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = make_node(stop)
        node.start()
        executor = make_executor()
        executor.add_node(node)
        if before_spin is not None:
            before_spin()
        stop.set_polling()
        if not stop.is_set():
            node.log_ready()
        spin_until(lambda: executor.spin_once(timeout_sec=SPIN_PERIOD_S),
                   lambda: stop.is_set() or not rclpy.ok(),
                   on_error=lambda exc: node.get_logger().error(startup_message(exc)),
                   ends=(ExternalShutdownException,), pause=stop.wait)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # start-up: bad arguments, configuration, model
        code = 1
        logger = node.get_logger() if node is not None else get_logger(name)
        logger.fatal(f'cannot start: {startup_message(exc)}')
    finally:
        stop.set_polling()
        stop.second_exit_code = code
        stop.request()  # from here on, a second signal exits at once
        clean_up(_shutdown_steps(node, executor, stop_first), code)
    if lingering_threads():
        exit_now(code)
    return code


def _shutdown_steps(node: Any, executor: Executor | None,
                    stop_first: Callable[[Any], None] | None) -> list:
    """Return the clean-up steps and their deadlines (s), in order."""
    steps: list = []
    if node is not None and stop_first is not None:
        steps.append((lambda: stop_first(node), THREAD_STOP_S))
    if executor is not None:
        steps.append((lambda: executor.shutdown(timeout_sec=EXECUTOR_SHUTDOWN_S),
                      EXECUTOR_SHUTDOWN_S + 0.1))
    if node is not None:
        steps += [(lambda: node.close(THREAD_STOP_S), 2 * THREAD_STOP_S + 0.1),
                  (node.destroy_node, THREAD_STOP_S)]
    return steps + [(rclpy.try_shutdown, THREAD_STOP_S)]
