r"""The ``trainer`` node: train, evaluate and export a stance sampler, then exit.

Usage::

    ros2 run reachability_ros trainer --ros-args \\
        -p config:=config/train_tiny.yaml -p output_dir:=runs/tiny \\
        [-p overrides:="['train.max_epochs=2']"]

Parameters (read-only, visible with ``ros2 param list /trainer`` and answered
while it trains): ``config`` (training YAML; relative paths resolve against the
working directory, then the package share), ``output_dir`` (empty:
``runs/<config name>``) and ``overrides`` (``key=value`` strings).

It checks everything before training (the config file, every override against
the config's keys and types, that ``output_dir`` can be created), then trains
on a worker thread with the same function as the trainer CLI
(``reachability_ros.training.train.train_from_config``) while the main thread
spins. Each epoch is logged and published on ``~/progress``
(``std_msgs/String``, JSON ``{epoch, max_epochs, loss, val_nll, elapsed_s}``,
latched: depth 1, transient local, reliable). The ONNX model lands in
``output_dir/model.onnx``.

Exit codes: 0 trained and exported; 1 a bad configuration (broken YAML, an
unknown or malformed override, an unknown parameter, an ``output_dir`` that
cannot be created, ``train.device=cuda`` without CUDA, no torch) or a failed
training, one FATAL line and no traceback; 130 after SIGINT and 143 after
SIGTERM, within a second, the best checkpoint so far kept and the log line
saying how to export it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from .lifecycle import (clean_up, exit_now, interrupted_exit_code, lingering_threads,
                        ShutdownRequest, SPIN_PERIOD_S, spin_until)
from .parameters import plain_parameter_value, unknown_parameters, unknown_parameters_message
from .qos import latched_qos
from .trainer_run import (check_trainer_parameters, EXIT_BAD_CONFIG, EXIT_OK,
                          failure_message, interrupted_message, progress_json, progress_line,
                          STOP_GRACE_S, TrainerJob, TrainingThread)

NODE_NAME = 'trainer'
PROGRESS_TOPIC = '~/progress'
PARAMETERS = ('config', 'output_dir', 'overrides')


class TrainerNode(Node):
    """Holds the trainer's parameters, logger and progress publisher."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.declare_parameter('config', '', ParameterDescriptor(
            description='training config (config/train_*.yaml); relative paths resolve '
                        'against the working directory, then the package share directory',
            read_only=True))
        self.declare_parameter('output_dir', '', ParameterDescriptor(
            description='output folder (checkpoint, metrics, plots, model.onnx); empty = '
                        'runs/<config name>', read_only=True))
        self.declare_parameter('overrides', Parameter.Type.STRING_ARRAY, ParameterDescriptor(
            description="config overrides as key=value strings, e.g. ['train.max_epochs=2']",
            read_only=True))
        self._progress_pub = self.create_publisher(String, PROGRESS_TOPIC, latched_qos())

    def check(self) -> TrainerJob:
        """Refuse unknown parameters and a bad configuration; return the checked job.

        Raises:
            ConfigError: an unknown parameter, no or a bad config, bad overrides,
                an output folder that cannot be created.
            ImportError: the training package cannot be imported (no torch).
        """
        given = list(getattr(self, '_parameter_overrides', None) or {})
        declared = list(PARAMETERS) + [n for n in given if self.has_parameter(n)]
        unknown = unknown_parameters(given, declared)
        if unknown:
            from reachability_ros.core.errors import ConfigError
            raise ConfigError(unknown_parameters_message(NODE_NAME, unknown, declared))
        try:
            items = plain_parameter_value(self.get_parameter('overrides').value) or []
        except Exception:  # declared by type only and not set
            items = []
        return check_trainer_parameters(self.get_parameter('config').value,
                                        self.get_parameter('output_dir').value, items)

    def publish_progress(self, progress: Mapping[str, Any]) -> None:
        """Log one epoch and publish it on ``~/progress`` (called from the training thread)."""
        self.get_logger().info(progress_line(progress))
        self._progress_pub.publish(String(data=progress_json(progress)))


def _fatal(node: Node | None, message: str) -> None:
    logger = node.get_logger() if node is not None else get_logger(NODE_NAME)
    logger.fatal(' '.join(str(message).split()))


def _train(node: TrainerNode, run: TrainingThread, job: TrainerJob, stop: ShutdownRequest,
           executor: SingleThreadedExecutor) -> int:
    """Train on the worker thread while spinning; return the exit code."""
    logger = node.get_logger()
    logger.info(f'training from {job.config_path} into {job.out_dir}'
                + (f' with overrides {job.overrides}' if job.overrides else ''))
    run.start()
    spin_until(lambda: executor.spin_once(timeout_sec=SPIN_PERIOD_S),
               lambda: run.done or stop.is_set() or not rclpy.ok(),
               on_error=lambda exc: logger.error(' '.join(
                   f'{type(exc).__name__} in a callback: {exc}'.split())),
               ends=(ExternalShutdownException,), pause=stop.wait)
    if not run.done:  # interrupted: give the training a moment to write its checkpoint
        run.wait(STOP_GRACE_S)
        summary = run.summary if run.done and run.error is None else None
        logger.warning(interrupted_message(job.out_dir, summary))
        return interrupted_exit_code(stop.signum)
    if run.error is not None:
        _fatal(node, failure_message(run.error))
        return EXIT_BAD_CONFIG
    summary = run.summary or {}
    if summary.get('interrupted'):
        logger.warning(interrupted_message(job.out_dir, summary))
        return interrupted_exit_code(stop.signum)
    brief = {k: v for k, v in summary.items() if k != 'metrics'}
    logger.info('done: ' + json.dumps(brief, default=str))
    return EXIT_OK


def main(args: list[str] | None = None) -> int:
    """Check the parameters, train once and exit; return the process exit code."""
    stop = ShutdownRequest(raise_on_signal=True)
    stop.install()
    node: TrainerNode | None = None
    executor: SingleThreadedExecutor | None = None
    run: TrainingThread | None = None
    code = EXIT_OK
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = TrainerNode()
        job = node.check()
        from reachability_ros.training.train import train_from_config
        logger = node.get_logger()
        run = TrainingThread(train_from_config, job, log=lambda msg: logger.info(str(msg)),
                             progress=node.publish_progress, should_stop=stop.is_set)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        stop.set_polling()
        code = _train(node, run, job, stop, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = interrupted_exit_code(stop.signum)
    except Exception as exc:  # parameters of the wrong type, a bad config, no torch
        code = EXIT_BAD_CONFIG
        _fatal(node, failure_message(exc, started=False))
    finally:
        stop.set_polling()
        stop.second_exit_code = code
        stop.request()  # from here on, a second signal exits at once
        steps = []
        if executor is not None:
            steps.append((lambda: executor.shutdown(timeout_sec=0.2), 0.3))
        if node is not None:
            steps.append((node.destroy_node, 0.2))
        clean_up(steps + [(rclpy.try_shutdown, 0.2)], code)
    if lingering_threads() or (run is not None and run.started and not run.done):
        exit_now(code)  # never finalize the interpreter under a running torch thread
    return code


if __name__ == '__main__':
    raise SystemExit(main())
